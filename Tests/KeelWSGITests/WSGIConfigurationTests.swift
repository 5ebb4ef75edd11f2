import KeelApp
import Testing

@testable import KeelWSGI

@Suite("WSGI configuration")
struct WSGIConfigurationTests {
    static func configuration(_ source: WSGIConfiguration.Source, callable: String = "application",
        chdir: String? = nil, pythonPath: [String] = [], virtualenv: String? = nil) -> WSGIConfiguration {
        WSGIConfiguration(source: source, callable: callable, chdir: chdir, pythonPath: pythonPath,
            virtualenv: virtualenv, log: { _ in })
    }

    @Test(arguments: [
        (configuration(.module("my-app")), "--wsgi my-app: give a Python module name"),
        (configuration(.module("a..b")), "--wsgi a..b: give a Python module name"),
        (configuration(.file("/nonexistent.py")), "--wsgi-file /nonexistent.py: no such file"),
        (configuration(.file("/tmp")), "--wsgi-file /tmp: no such file"),
        (configuration(.module("app"), callable: "not valid"), "callable name 'not valid' is not a Python identifier"),
        (configuration(.module("app"), chdir: "/nonexistent"), "--chdir /nonexistent: no such directory"),
        (configuration(.module("app"), pythonPath: ["/nonexistent"]), "--pythonpath /nonexistent: no such directory"),
        (configuration(.module("app"), virtualenv: "/nonexistent"), "--virtualenv /nonexistent: no such directory"),
        (configuration(.module("app"), virtualenv: "/tmp"), "--virtualenv /tmp: not a virtualenv (no pyvenv.cfg)"),
    ])
    func mistakesNameTheFlag(configuration: WSGIConfiguration, message: String) {
        #expect {
            try configuration.validate()
        } throws: { error in
            (error as? AppLoadError)?.summary.contains(message) == true
        }
    }

    @Test(arguments: ["app", "my_app.wsgi", "pkg.sub.module", "_private"])
    func moduleNamesAreAccepted(name: String) throws {
        try Self.configuration(.module(name)).validate()
    }
}
