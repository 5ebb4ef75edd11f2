import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An app that cannot load ends keel-pool with the Python traceback and exit code 1, fast, with no
/// respawn loop; flag mistakes are refused before anything starts.
@Suite("WSGI startup errors", .timeLimit(.minutes(2)))
struct WSGIStartupTests {
    static func run(_ arguments: [String], files: [String: String]) throws -> (code: Int32, log: String, seconds: Double) {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, text) in files { try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8) }
        let port = try Harness.freePort()
        let started = Date()
        let process = try ManagedProcess(
            Harness.keelPoolPath,
            ["--http-socket", "127.0.0.1:\(port)", "--chdir", directory, "--processes", "2"] + arguments,
            logPath: directory + "/pool.log")
        let code = try process.waitForExit(seconds: 5)
        return (code, process.log, Date().timeIntervalSince(started))
    }

    @Test func importErrorPrintsTheTracebackAndExitsWith1() throws {
        let result = try Self.run(
            ["--wsgi", "broken"], files: ["broken.py": "import os\nimport module_that_does_not_exist\n"])
        #expect(result.code == 1)
        #expect(result.seconds < 5)
        #expect(result.log.contains("Traceback (most recent call last)"))
        #expect(result.log.contains("broken.py\", line 2"))
        #expect(result.log.contains("ModuleNotFoundError: No module named 'module_that_does_not_exist'"))
        #expect(result.log.contains("the app cannot be loaded"))
        #expect(!result.log.contains("respawning"))
    }

    @Test func syntaxErrorInAWSGIFileExitsWith1() throws {
        let result = try Self.run(["--wsgi-file", "app.py"], files: ["app.py": "def application(:\n"])
        #expect(result.code == 1)
        #expect(result.log.contains("SyntaxError"))
    }

    @Test func missingCallableNamesItAndExitsWith1() throws {
        let result = try Self.run(["--wsgi", "app"], files: ["app.py": "app = None\n"])
        #expect(result.code == 1)
        #expect(result.log.contains("--wsgi app: module 'app' has no attribute 'application'"))
    }

    @Test func nonCallableIsRefusedAndExitsWith1() throws {
        let result = try Self.run(["--wsgi", "app:app"], files: ["app.py": "app = 'not a function'\n"])
        #expect(result.code == 1)
        #expect(result.log.contains("'app' in module 'app' is a str, not a callable app"))
    }

    @Test(arguments: [
        (["--wsgi-file", "/nonexistent/app.py"], "--wsgi-file /nonexistent/app.py: no such file"),
        (["--wsgi", "app", "--virtualenv", "/tmp"], "--virtualenv /tmp: not a virtualenv (no pyvenv.cfg)"),
        (["--wsgi", "app", "--chdir", "/nonexistent"], "--chdir /nonexistent: no such directory"),
        (["--wsgi", "app", "--pythonpath", "/nonexistent"], "--pythonpath /nonexistent: no such directory"),
        (["--wsgi", "my-app"], "--wsgi my-app: give a Python module name"),
        (["--wsgi", "app", "--app", "hello"], "--app and --wsgi/--wsgi-file both name an app"),
        (["--wsgi", "app", "--env", "NOVALUE"], "--env NOVALUE: give KEY=VALUE"),
        (["--app", "hello", "--virtualenv", "/tmp"], "--virtualenv is for Python apps"),
    ])
    func flagMistakesAreRefusedBeforeStarting(arguments: [String], message: String) throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try ManagedProcess(
            Harness.keelPoolPath, ["--http-socket", "127.0.0.1:1"] + arguments, logPath: directory + "/out.log")
        let code = try process.waitForExit(seconds: 5)
        #expect(code != 0)
        #expect(process.log.contains(message))
    }
}
