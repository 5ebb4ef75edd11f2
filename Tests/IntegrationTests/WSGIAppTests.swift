import Foundation
import NIOCore
import Testing
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// PEP 3333 behind keel-pool: each app is wrapped in `wsgiref.validate.validator` where it applies,
/// so a server-side violation fails inside the app (a 500 and an AssertionError in the log).
@Suite("WSGI apps (PEP 3333)", .timeLimit(.minutes(2)))
struct WSGIAppTests {
    @Test func helloOverHTTPAndUWSGI() throws {
        let wsgi = try WSGIPool("hello", uwsgi: true, ["--processes", "2"])
        let reply = try HTTPClient.get(port: wsgi.port, "/hello?x=1")
        #expect(reply.status == 200)
        #expect(reply.text == "Hello world!\n")
        let raw = try UWSGIClient.exchange(path: wsgi.pool.socketPath!, vars: UWSGIClient.vars(uri: "/hello"))
        let viaUWSGI = try UWSGIClient.parse(raw)
        #expect(viaUWSGI.status == 200)
        #expect(viaUWSGI.text == "Hello world!\n")
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test func aBodylessRequestReadsNothingEveryWayAndGetsAFreshEnviron() throws {
        let wsgi = try WSGIPool("empty_body_reads", ["--processes", "1"])
        for _ in 0..<2 {
            let reply = try HTTPClient.get(port: wsgi.port, "/")
            #expect(reply.status == 200)
            let seen = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
            for key in ["read", "read_all", "read_0", "read_5", "readline", "readline_3", "readlines", "iter"] {
                #expect((seen[key] as? [Any])?.isEmpty == true, "\(key)")
            }
            #expect(seen["leaked"] as? Bool == false)
        }
        // wsgi.errors text without its newline still reaches the log once the request ends.
        try Harness.waitUntil("the wsgi.errors line") { wsgi.log.contains("no newline after this") }
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test func environHasTheCGIVarsAndTruthfulWSGIKeys() throws {
        let wsgi = try WSGIPool("environ_app", ["--processes", "2", "--threads", "3"])
        let reply = try HTTPClient.request(
            port: wsgi.port, "/caf%C3%A9/x%FF?q=1&r=%20", headers: [("X-Trace-Id", "abc"), ("Cookie", "a=1")])
        #expect(reply.status == 200)
        let env = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
        #expect(env["REQUEST_METHOD"] as? String == "GET")
        #expect(env["SCRIPT_NAME"] as? String == "")
        #expect(env["QUERY_STRING"] as? String == "q=1&r=%20")
        #expect(env["SERVER_NAME"] as? String == "127.0.0.1")
        #expect(env["SERVER_PORT"] as? String == String(wsgi.port))
        #expect(env["SERVER_PROTOCOL"] as? String == "HTTP/1.1")
        #expect(env["REMOTE_ADDR"] as? String == "127.0.0.1")
        #expect(env["HTTP_X_TRACE_ID"] as? String == "abc")
        #expect(env["HTTP_COOKIE"] as? String == "a=1")
        #expect(env["CONTENT_LENGTH"] == nil)
        #expect(env["wsgi.url_scheme"] as? String == "http")
        #expect(env["wsgi.multithread"] as? Bool == true)
        #expect(env["wsgi.multiprocess"] as? Bool == true)
        #expect(env["wsgi.run_once"] as? Bool == false)
        #expect(env["wsgi.version"] as? [Int] == [1, 0])
        // PATH_INFO holds the decoded bytes as latin-1: é is two code points, as under every WSGI server.
        #expect((env["path_bytes"] as? [Int])?.prefix(6) == [47, 99, 97, 102, 0xC3, 0xA9])
        // INT and TERM stay the pool's: blocked on the app's threads (the worker's main thread waits for
        // them), so no Python handler (KeyboardInterrupt) can run in a request.
        let blocked = try #require(env["blocked_signals"] as? Int)
        #expect(blocked & (1 << (SIGINT - 1)) != 0)
        #expect(blocked & (1 << (SIGTERM - 1)) != 0)
        #expect(env["sys.prefix"] as? String == "/usr")
        try wsgi.pool.stop()
    }

    @Test func httpsAndServerVarsComeFromTheFrontOverUWSGI() throws {
        let wsgi = try WSGIPool("environ_app", http: false, uwsgi: true)
        let vars = UWSGIClient.vars(uri: "/p?a=b", extra: [("HTTPS", "on")])
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: wsgi.pool.socketPath!, vars: vars))
        #expect(reply.status == 200)
        let env = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
        #expect(env["wsgi.url_scheme"] as? String == "https")
        #expect(env["HTTPS"] as? String == "on")
        #expect(env["DOCUMENT_ROOT"] as? String == "/var/www")
        #expect(env["wsgi.multithread"] as? Bool == false)
        #expect(env["wsgi.multiprocess"] as? Bool == false)
        try wsgi.pool.stop()
    }

    @Test func generatorBodyIsStreamedInChunks() throws {
        let wsgi = try WSGIPool("stream")
        let reply = try HTTPClient.get(port: wsgi.port, "/s")
        #expect(reply.status == 200)
        #expect(reply.header("Transfer-Encoding") == "chunked")
        #expect(reply.text == (0..<5).map { "chunk \($0)\n" }.joined())
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test(arguments: ["echo_read", "echo_lines", "echo_iter"])
    func postEchoOfOneMebibyteIsByteExact(app: String) throws {
        let wsgi = try WSGIPool(app, uwsgi: true, ["--threads", "2"])
        // Lines of varied length, so readline() and iteration split the body many times.
        var body = testBytes(count: 1 << 20)
        for index in stride(from: 100, to: body.count, by: 997) { body[index] = UInt8(ascii: "\n") }
        let reply = try HTTPClient.request(port: wsgi.port, method: "POST", "/echo", body: body)
        #expect(reply.status == 200)
        #expect(reply.body == body)
        let raw = try UWSGIClient.exchange(
            path: wsgi.pool.socketPath!, vars: UWSGIClient.vars(method: "POST", uri: "/echo", contentLength: body.count),
            body: body)
        #expect(try UWSGIClient.parse(raw).body == body)
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test(arguments: ["raise_before", "raise_after"])
    func anExceptionIsA500AndATracebackAndTheWorkerSurvives(app: String) throws {
        let wsgi = try WSGIPool(app)
        let pids = wsgi.pool.workers
        let reply = try HTTPClient.get(port: wsgi.port, "/fails")
        #expect(reply.status == 500)
        try Harness.waitUntil("the traceback in the log") { wsgi.log.contains("RuntimeError: boom") }
        #expect(wsgi.log.contains("GET /fails HTTP/1.1"))
        #expect(wsgi.log.contains("Traceback (most recent call last)"))
        #expect(try HTTPClient.get(port: wsgi.port, "/again").status == 500)
        #expect(wsgi.pool.workers == pids)
        try wsgi.pool.stop()
    }

    @Test func startResponseAndWriteRefuseMisuseAsPEP3333Says() throws {
        let wsgi = try WSGIPool("start_response_rules")
        let reply = try HTTPClient.get(port: wsgi.port, "/")
        #expect(reply.status == 200)
        let seen = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        #expect(seen["status_bytes"] == "TypeError: start_response(): status must be str, not bytes")
        #expect(seen["headers_tuple"] == "TypeError: start_response(): headers must be a list, not tuple")
        #expect(seen["header_int"] == "TypeError: start_response(): each header must be a (str, str) tuple, not ('A', 1)")
        #expect(seen["header_triple"]?.hasPrefix("TypeError: start_response(): each header must be") == true)
        #expect(seen["unknown_keyword"] == "TypeError: start_response() got an unexpected keyword argument 'colour'")
        #expect(seen["no_headers"]?.hasPrefix("TypeError") == true)
        #expect(seen["second_call"] == "AssertionError: start_response() called a second time without exc_info")
        #expect(seen["write_str"] == "TypeError: write() takes bytes, not str")
        #expect(seen["exc_info_none_second"]?.hasPrefix("AssertionError") == true, "exc_info=None is no exc_info")
        try wsgi.pool.stop()
    }

    @Test func headersThatAreNotStrPairsGive500WithTheReasonLogged() throws {
        let wsgi = try WSGIPool("bad_header_value")
        let reply = try HTTPClient.get(port: wsgi.port, "/")
        #expect(reply.status == 500)
        try Harness.waitUntil("the reason in the log") {
            wsgi.log.contains("each header must be a (str, str) tuple, not ('X-Count', 3)")
        }
        try wsgi.pool.stop()
    }

    @Test func excInfoBeforeTheHeadReplacesTheStatus() throws {
        let wsgi = try WSGIPool("exc_info")
        let reply = try HTTPClient.get(port: wsgi.port, "/")
        #expect(reply.status == 500)
        #expect(reply.text == "the app handled it\n")
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test func excInfoAfterTheHeadReRaisesAndCutsTheResponse() throws {
        let wsgi = try WSGIPool("exc_info_after_commit")
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 200 OK"))
        #expect(raw.contains("first\n"))
        #expect(!raw.contains("never"))
        #expect(!raw.hasSuffix("0\r\n\r\n"))  // no terminating chunk: the client sees a cut response
        try Harness.waitUntil("the re-raised error in the log") { wsgi.log.contains("ValueError: late failure") }
        try wsgi.pool.stop()
    }

    @Test func writeCallableOutputComesFirst() throws {
        let wsgi = try WSGIPool("write_callable")
        let reply = try HTTPClient.get(port: wsgi.port, "/")
        #expect(reply.status == 200)
        #expect(reply.text == "written, then returned\n")
        try wsgi.pool.stop()
    }

    @Test(arguments: [false, true])
    func closeIsCalledWhenTheClientDisconnects(uwsgi: Bool) throws {
        let wsgi = try WSGIPool("close_on_disconnect", http: !uwsgi, uwsgi: uwsgi, ["--threads", "2"])
        let marker = wsgi.appDirectory + "/closed-marker"
        let socket: TestSocket
        if uwsgi {
            socket = try TestSocket(unixPath: wsgi.pool.socketPath!)
            var packet = ByteBuffer()
            try UWSGIPacket.writeRequestHead(
                vars: UWSGIClient.vars(uri: "/slow?marker=\(marker)").map { (name: $0.0, value: $0.1) }, into: &packet)
            try socket.write(Array(packet.readableBytesView))
        } else {
            socket = try TestSocket(tcpPort: wsgi.port)
            try socket.write("GET /slow?marker=\(marker) HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        #expect(try !socket.readSome().isEmpty)
        shutdown(socket.fd, Int32(SHUT_RDWR))  // the client goes away mid-body
        try Harness.waitUntil("close() of the response iterable", seconds: 10) {
            FileManager.default.fileExists(atPath: marker)
        }
        try wsgi.pool.stop()
    }

    @Test func strBodyIsA500WithAClearMessage() throws {
        let wsgi = try WSGIPool("str_body")
        #expect(try HTTPClient.get(port: wsgi.port, "/").status == 500)
        try Harness.waitUntil("the message") { wsgi.log.contains("holds a str, not bytes") }
        try wsgi.pool.stop()
    }

    @Test(arguments: [("header_injection", "invalid header"), ("bad_status", "is not 'NNN Reason'")])
    func invalidHeadIsA500WithTheReasonLogged(app: String, logged: String) throws {
        let wsgi = try WSGIPool(app)
        let reply = try HTTPClient.get(port: wsgi.port, "/")
        #expect(reply.status == 500)
        #expect(reply.header("Set-Cookie") == nil)
        try Harness.waitUntil("the reason in the log") { wsgi.log.contains(logged) }
        try wsgi.pool.stop()
    }

    @Test(arguments: [false, true])
    func fileWrapperSendsAFileByteExact(uwsgi: Bool) throws {
        let wsgi = try WSGIPool("file_wrapper", http: !uwsgi, uwsgi: uwsgi)
        let (payload, reply) = try wsgi.fetchFile(named: "payload.bin", count: 3 << 20, seed: 7, uwsgi: uwsgi)
        #expect(reply.status == 200)
        #expect(reply.body.count == payload.count)
        let same = reply.body == payload
        #expect(same)
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test func wsgiErrorsGoesToThePoolLogLineByLine() throws {
        let wsgi = try WSGIPool("errors_log")
        let reply = try HTTPClient.get(port: wsgi.port, "/")
        #expect(reply.status == 200)
        #expect(reply.text == "wsgi.errors.write() takes str, not bytes", "PEP 3333: wsgi.errors takes text")
        try Harness.waitUntil("the lines in the log") {
            let log = wsgi.log
            return log.contains("first line from wsgi.errors\n") && log.contains("second line\n")
                && log.contains("from writelines, one line\n") && log.contains("a lone surrogate \\udc80 is escaped\n")
                && log.contains("a CRLF line\n") && log.contains("after it\n") && log.contains("unterminated tail\n")
        }
        try wsgi.pool.stop()
    }
}
