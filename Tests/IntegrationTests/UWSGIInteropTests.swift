import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel in front of the real uWSGI (Debian's uwsgi + python3 plugin) running a small WSGI app written here.
@Suite("keel → real uWSGI", .serialized, .timeLimit(.minutes(2)))
struct UWSGIInteropTests {
    static let app = """
        import json

        def application(environ, start_response):
            path = environ.get('PATH_INFO', '')
            if path.startswith('/status/'):
                code = int(path.rsplit('/', 1)[1])
                start_response('%d Custom' % code, [('Content-Type', 'text/plain'), ('X-From', 'uwsgi')])
                return [b'status %d' % code]
            length = int(environ.get('CONTENT_LENGTH') or 0)
            body = environ['wsgi.input'].read(length) if length else b''
            seen = {k: v for k, v in environ.items() if isinstance(v, str)}
            seen['body'] = body.decode('latin-1')
            start_response('200 OK', [('Content-Type', 'application/json'), ('X-From', 'uwsgi')])
            return [json.dumps(seen).encode()]
        """

    final class RealUWSGI: @unchecked Sendable {
        let process: ManagedProcess
        let socket: String

        init(directory: String) throws {
            let binary = try #require(
                ["/usr/bin/uwsgi", "/usr/bin/uwsgi-core"].first { FileManager.default.isExecutableFile(atPath: $0) },
                "uWSGI is not installed: run Tests/run.sh, which installs uwsgi-core and uwsgi-plugin-python3")
            try UWSGIInteropTests.app.write(toFile: directory + "/app.py", atomically: true, encoding: .utf8)
            socket = directory + "/uwsgi.sock"
            process = try ManagedProcess(
                binary,
                [
                    "--plugin", "python3", "--socket", socket, "--chdir", directory, "--wsgi-file", directory + "/app.py",
                    "--master", "--processes", "1", "--die-on-term", "--need-app", "--disable-logging",
                ],
                logPath: directory + "/uwsgi.log")
            try Harness.waitUntil("uWSGI to listen on \(socket)", seconds: 20) {
                guard process.isRunning else { throw HarnessError("uWSGI exited:\n\(process.log)") }
                return (try? TestSocket(unixPath: socket)) != nil
            }
        }

        deinit { try? process.stop(signal: SIGTERM) }
    }

    @Test func headersQueryBodyAndStatusArriveIntact() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let uwsgi = try RealUWSGI(directory: directory)
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + uwsgi.socket, "--access-log", "off"], directory: directory + "/keel")

        let body = Array("name=keel&x=ü".utf8)
        let reply = try HTTPClient.request(
            port: keel.port, method: "POST", "/form/submit?a=1&b=%20two",
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Trace", "t1"), ("Accept", "text/a"), ("Accept", "text/b")],
            body: body)
        #expect(reply.status == 200)
        #expect(reply.header("X-From") == "uwsgi")
        let seen = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        #expect(seen["REQUEST_METHOD"] == "POST")
        #expect(seen["PATH_INFO"] == "/form/submit")
        #expect(seen["QUERY_STRING"] == "a=1&b=%20two")
        #expect(seen["CONTENT_TYPE"] == "application/x-www-form-urlencoded")
        #expect(seen["CONTENT_LENGTH"] == String(body.count))
        #expect(seen["HTTP_X_TRACE"] == "t1")
        #expect(seen["HTTP_ACCEPT"] == "text/a, text/b")
        #expect(seen["body"].map { Array($0.unicodeScalars.map { UInt8($0.value) }) } == body)

        for code in [201, 404, 418, 503] {
            let status = try keel.get("/status/\(code)")
            #expect(status.status == code)
            #expect(status.text == "status \(code)")
        }
        // The keel wire is offered on every request and ignored by uWSGI: one connection per request, logged once.
        for _ in 0..<20 { #expect(try keel.get("/status/200").status == 200) }
        #expect(keel.log.components(separatedBy: "answers plain uwsgi (not keel-pool): one connection per request").count == 2)
    }
}
