import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel-pool's --http-socket, spoken to by a raw client so framing is checked byte by byte.
@Suite("HTTP socket", .timeLimit(.minutes(2)))
struct HTTPSocketTests {
    @Test func helloWithContentLength() throws {
        let pool = try PoolUnderTest(["--app", "hello", "--processes", "2"])
        let reply = try HTTPClient.get(port: pool.httpPort!, "/anything?x=1")
        #expect(reply.status == 200)
        #expect(reply.text == "Hello world!\n")
        #expect(reply.header("Content-Length") == "13")
        #expect(reply.header("Content-Type") == "text/plain")
        try pool.stop()
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        let reader = HTTPResponseReader(socket)
        for _ in 0..<5 {
            try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let reply = try reader.next()
            #expect(reply.status == 200)
            #expect(reply.text == "Hello world!\n")
            #expect(reply.header("Connection")?.lowercased() != "close")
        }
        try pool.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let pool = try PoolUnderTest(["--app", "env", "--threads", "4"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        let requests = (1...6).map { "GET /p\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined()
        try socket.write(requests)
        let reader = HTTPResponseReader(socket)
        for index in 1...6 {
            let reply = try reader.next()
            #expect(reply.status == 200)
            let env = try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String]
            #expect(env?["PATH_INFO"] == "/p\(index)")
        }
        try pool.stop()
    }

    @Test func manyPipelinedRequestsWithBodiesAreAnsweredInOrderWhileReadsPause() throws {
        // More than the 4 a connection queues before it stops reading, with bodies, on app threads.
        let pool = try PoolUnderTest(["--app", "echo", "--threads", "4"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        let requests = (1...12).map { "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nb\(String(format: "%03d", $0))" }
        try socket.write(requests.joined())
        let reader = HTTPResponseReader(socket)
        for index in 1...12 {
            let reply = try reader.next()
            #expect(reply.status == 200)
            #expect(reply.text == "b\(String(format: "%03d", index))")
        }
        try pool.stop()
    }

    @Test func aMalformedRequestPipelinedAfterGoodOnesEndsTheConnectionAfterTheirAnswers() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nBad Header\r\n\r\n")
        let reader = HTTPResponseReader(socket)
        #expect(try reader.next().status == 200)
        #expect(try reader.next().status == 200)
        #expect(try reader.next().status == 400)
        try Harness.waitUntil("the log line") { pool.log.contains("malformed HTTP request from") }
        try pool.stop()
    }

    @Test func echoOfOneMebibyteIsByteExact() throws {
        let pool = try PoolUnderTest(["--app", "echo", "--threads", "2"])
        let body = testBytes(count: 1 << 20)
        let reply = try HTTPClient.request(
            port: pool.httpPort!, method: "POST", "/echo", headers: [("Content-Type", "application/x-test")],
            body: body)
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type") == "application/x-test")
        #expect(reply.body.count == body.count)
        #expect(reply.body == body)
        try pool.stop()
    }

    @Test func chunkedRequestBodyIsDechunked() throws {
        let pool = try PoolUnderTest(["--app", "echo"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.text == "hello, world")
        try pool.stop()
    }

    @Test func headHasHeadersButNoBody() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let reader = HTTPResponseReader(socket)
        let head = try reader.next(headRequest: true)
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "13")
        let get = try reader.next()  // would be garbled if HEAD had sent a body
        #expect(get.text == "Hello world!\n")
        try pool.stop()
    }

    @Test func http10GetsCloseDelimitedOrKeepAliveOnlyWhenAsked() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("GET / HTTP/1.0\r\n\r\n")
        let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(raw.hasSuffix("Hello world!\n"))
        try pool.stop()
    }

    @Test func bodyOverLimitPostIs413() throws {
        let pool = try PoolUnderTest(["--app", "echo", "--limit-post", "1000"])
        let reply = try HTTPClient.request(port: pool.httpPort!, method: "POST", "/", body: testBytes(count: 5000))
        #expect(reply.status == 413)
        let ok = try HTTPClient.request(port: pool.httpPort!, method: "POST", "/", body: testBytes(count: 1000))
        #expect(ok.status == 200)
        #expect(pool.log.contains("--limit-post"))
        try pool.stop()
    }

    @Test func malformedRequestGets400AndTheWorkerLives() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("GARBAGE\u{01}\u{02} nonsense\r\n\r\n")
        let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 400"))
        #expect(try HTTPClient.get(port: pool.httpPort!, "/").status == 200)
        try pool.stop()
    }

    @Test func expect100ContinueGetsAnInterimResponse() throws {
        let pool = try PoolUnderTest(["--app", "echo"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        let reader = HTTPResponseReader(socket)
        let interim = try reader.next()
        #expect(interim.status == 100)
        try socket.write("hello")
        let reply = try reader.next()
        #expect(reply.status == 200)
        #expect(reply.text == "hello")
        try pool.stop()
    }

    @Test func halfSentRequestGets408AfterSocketTimeout() throws {
        let pool = try PoolUnderTest(["--app", "echo", "--socket-timeout", "1"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of it")
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.status == 408)
        #expect(reply.header("Connection") == "close")
        try Harness.waitUntil("the 408 log line") { pool.log.contains("request not received within --socket-timeout: 408") }
        try pool.stop()
    }

    @Test func idleKeepAliveConnectionIsClosedAfterSocketTimeout() throws {
        let pool = try PoolUnderTest(["--app", "hello", "--socket-timeout", "1"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let reader = HTTPResponseReader(socket)
        #expect(try reader.next().status == 200)
        let start = Date()
        #expect(try socket.readToEOF().isEmpty)  // closed by the worker, no bytes
        #expect(Date().timeIntervalSince(start) < 5)
        try pool.stop()
    }

    @Test func headerBlockOverTheLimitIs431() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        let huge = String(repeating: "a", count: 100 * 1024)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(huge)\r\n\r\n")
        let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 431"))
        #expect(raw.contains("Request header block too large"))
        try Harness.waitUntil("the log line") { pool.log.contains("answered 431") }
        #expect(try HTTPClient.get(port: pool.httpPort!, "/").status == 200)
        try pool.stop()
    }

    @Test func appErrorsKeepTheirStatus() throws {
        let pool = try PoolUnderTest(["--app", "sleep"])
        let reply = try HTTPClient.get(port: pool.httpPort!, "/?ms=abc")
        #expect(reply.status == 400)
        #expect(reply.text.contains("ms="))
        try pool.stop()
    }

    @Test func requestVarsFollowUWSGIParams() throws {
        let pool = try PoolUnderTest(["--app", "env"])
        let reply = try HTTPClient.request(
            port: pool.httpPort!, "/a%20b/c?q=1&r=%20", headers: [("X-Multi", "one"), ("X-Multi", "two"),
            ("Cookie", "a=1"), ("Cookie", "b=2")])
        let env = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        #expect(env["REQUEST_METHOD"] == "GET")
        #expect(env["REQUEST_URI"] == "/a%20b/c?q=1&r=%20")
        #expect(env["PATH_INFO"] == "/a b/c")
        #expect(env["QUERY_STRING"] == "q=1&r=%20")
        #expect(env["SERVER_PROTOCOL"] == "HTTP/1.1")
        #expect(env["REMOTE_ADDR"] == "127.0.0.1")
        #expect(env["SERVER_PORT"] == String(pool.httpPort!))
        #expect(env["HTTP_X_MULTI"] == "one, two")
        #expect(env["HTTP_COOKIE"] == "a=1; b=2")
        try pool.stop()
    }
}
