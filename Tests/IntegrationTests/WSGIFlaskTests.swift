import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A Flask app (Debian's python3-flask) run through `--virtualenv`: a venv made by /usr/bin/python3
/// with the system site-packages, as a team that installs Flask from apt would make it.
@Suite("WSGI Flask via --virtualenv", .timeLimit(.minutes(2)))
struct WSGIFlaskTests {
    @Test func flaskRoutesJSONFormsNotFoundAndRedirect() throws {
        let directory = try WSGITestApps.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let venv = directory + "/venv"
        let make = try ChildProcess.run(
            "/usr/bin/python3", ["-m", "venv", "--without-pip", "--system-site-packages", venv], seconds: 60)
        try #require(make.code == 0, "python3 -m venv failed: install python3-venv (Tests/run.sh does): \(make.output)")

        let pool = try PoolUnderTest(
            ["--chdir", directory, "--wsgi", "flask_app:app", "--virtualenv", venv, "--threads", "2"])
        let port = pool.httpPort!

        let index = try HTTPClient.get(port: port, "/")
        #expect(index.status == 200)
        #expect(index.text == "Hello from Flask\n")

        let user = try HTTPClient.get(port: port, "/users/42?x=y")
        #expect(user.status == 200)
        #expect(user.header("Content-Type") == "application/json")
        let json = try JSONSerialization.jsonObject(with: Data(user.body)) as? [String: Any]
        #expect(json?["id"] as? Int == 42)
        #expect(json?["name"] as? String == "user42")
        #expect(json?["args"] as? [String: String] == ["x": "y"])

        let form = try HTTPClient.request(
            port: port, method: "POST", "/form", headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: Array("name=caf%C3%A9&tag=a&tag=b".utf8))
        #expect(form.status == 200)
        let fields = try JSONSerialization.jsonObject(with: Data(form.body)) as? [String: Any]
        #expect(fields?["name"] as? String == "café")
        #expect(fields?["tags"] as? [String] == ["a", "b"])

        #expect(try HTTPClient.get(port: port, "/missing").status == 404)
        #expect(try HTTPClient.request(port: port, method: "PUT", "/form").status == 405)

        let redirect = try HTTPClient.get(port: port, "/old")
        #expect(redirect.status == 302)
        #expect(redirect.header("Location") == "/")
        try pool.stop()
    }
}

/// The example app in deploy/examples/wsgi, as the README runs it.
@Suite("WSGI example app", .timeLimit(.minutes(3)))  // bounds a hang; a queue behind blocking suites on the 2-thread pool can take ~60 s
struct WSGIExampleAppTests {
    @Test func exampleAppServesHelloAndEcho() throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/examples/wsgi/app.py").path
        let pool = try PoolUnderTest(["--wsgi-file", source, "--threads", "2"])
        let hello = try HTTPClient.get(port: pool.httpPort!, "/")
        #expect(hello.status == 200)
        #expect(hello.text == "Hello world!\n")
        #expect(hello.header("Content-Length") == "13")
        let echo = try HTTPClient.request(port: pool.httpPort!, method: "POST", "/echo", body: Array("ping".utf8))
        #expect(echo.text == "ping")
        #expect(try HTTPClient.get(port: pool.httpPort!, "/nope").status == 404)
        try pool.stop()
    }
}
