import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel → keel-pool over a unix socket (the uwsgi protocol), as the bundle runs them.
@Suite("keel → keel-pool (uwsgi)", .serialized, .timeLimit(.minutes(3)))
struct FrontProxyTests {
    @Test func getCarriesQueryHeadersAndClientAddressAsUWSGIVars() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let reply = try keel.get(
            "/some/p%61th?x=1&y=two",
            headers: [("X-Custom", "a"), ("X-Custom", "b"), ("Cookie", "c=1"), ("Cookie", "d=2"), ("X_Spoof", "no")])
        #expect(reply.status == 200)
        let vars = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        #expect(vars["QUERY_STRING"] == "x=1&y=two")
        #expect(vars["REQUEST_URI"] == "/some/p%61th?x=1&y=two")
        #expect(vars["PATH_INFO"] == "/some/path")
        #expect(vars["REQUEST_METHOD"] == "GET")
        #expect(vars["SERVER_PROTOCOL"] == "HTTP/1.1")
        #expect(vars["REQUEST_SCHEME"] == "http")
        #expect(vars["REMOTE_ADDR"] == "127.0.0.1")
        #expect(Int(vars["REMOTE_PORT"] ?? "") != nil)
        #expect(vars["SERVER_PORT"] == String(keel.port))
        #expect(vars["HTTP_HOST"] == "127.0.0.1:\(keel.port)")
        #expect(vars["HTTP_X_CUSTOM"] == "a, b")
        #expect(vars["HTTP_COOKIE"] == "c=1; d=2")
        #expect(vars["HTTP_X_SPOOF"] == nil, "headers with underscores are dropped, as nginx does")
        #expect(vars["HTTPS"] == nil)
    }

    @Test func postOfOneMebibyteIsEchoedByteExact() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let body = testBytes(count: 1 << 20)
        let reply = try HTTPClient.request(port: keel.port, method: "POST", "/echo", body: body)
        #expect(reply.status == 200)
        #expect(reply.body.count == body.count)
        #expect(reply.body == body)
    }

    @Test func chunkedUploadIsDechunkedWithARealContentLength() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write(
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.status == 200)
        let vars = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        #expect(vars["CONTENT_LENGTH"] == "12")
        #expect(vars["HTTP_TRANSFER_ENCODING"] == nil)

        let echoPool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let echoKeel = try FrontUnderTest(["--uwsgi", "unix:" + echoPool.socketPath!, "--access-log", "off"])
        let echoSocket = try TestSocket(tcpPort: echoKeel.port)
        try echoSocket.write(
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        #expect(try HTTPResponseReader(echoSocket).next().text == "hello, world")
    }

    @Test func largeStreamedResponseToASlowReaderDoesNotGrowKeel() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "stream"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        _ = try keel.get("/warm?chunks=4")
        let baseline = try #require(Harness.residentKiB(keel.process.pid))
        let socket = try TestSocket(tcpPort: keel.port)
        // A small receive buffer makes this reader slow in the way that matters: the kernel cannot soak it up.
        var small: Int32 = 64 * 1024
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        try socket.write("GET /big?chunks=320&size=65536 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        var received = 0
        var peak = baseline
        var reads = 0
        while true {
            let chunk = try socket.readSome()
            if chunk.isEmpty { break }
            received += chunk.count
            reads += 1
            if reads % 16 == 0 {
                usleep(20_000)
                peak = max(peak, Harness.residentKiB(keel.process.pid) ?? 0)
            }
        }
        // 20 MiB body plus chunked framing and the head.
        #expect(received > 20 * 1024 * 1024)
        #expect(peak - baseline < 6 * 1024, "keel grew by \(peak - baseline) KiB while relaying 20 MiB to a slow reader")
    }

    @Test func headKeepAliveAndPipelining() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let head = try HTTPClient.request(port: keel.port, method: "HEAD", "/")
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "13")

        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        // Three pipelined requests in one write, answered in order on one connection.
        try socket.write(
            "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reader.next().text == "Hello world!\n")
        let second = try reader.next(headRequest: true)
        #expect(second.status == 200 && second.body.isEmpty)
        #expect(try reader.next().text == "Hello world!\n")
        // Still open: a fourth request on the same connection.
        try socket.write("GET /4 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reader.next().status == 200)
        // HTTP/1.0 without keep-alive: answered, then closed.
        let old = try TestSocket(tcpPort: keel.port)
        try old.write("GET / HTTP/1.0\r\n\r\n")
        let raw = String(decoding: try old.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.0 200"))
        #expect(raw.hasSuffix("Hello world!\n"))
    }

    @Test func backendDownIs502AndSlowBackendIs504() throws {
        let directory = try Harness.makeTempDirectory()
        let keel = try FrontUnderTest(["--uwsgi", "unix:\(directory)/nobody.sock", "--access-log", "off"])
        let down = try keel.get("/")
        #expect(down.status == 502)
        #expect(keel.log.contains("nobody.sock"))

        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "sleep", "--threads", "2"])
        let slow = try FrontUnderTest(config: """
            [[listen]]
            address = "127.0.0.1:{PORT}"
            [log]
            access = "off"
            [upstream.app]
            servers = ["unix:\(pool.socketPath!)"]
            read_timeout = "500ms"
            [[route]]
            uwsgi = "app"
            """)
        let timedOut = try slow.get("/?ms=3000")
        #expect(timedOut.status == 504)
        #expect(try slow.get("/?ms=10").status == 200)
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func twoServersOneDeadAllRequestsSucceed() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try FrontUnderTest([
            "--uwsgi", "unix:\(pool.directory)/dead.sock", "--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off",
        ])
        for index in 0..<20 {
            let reply = try keel.get("/\(index)")
            #expect(reply.status == 200, "request \(index)")
        }
    }
}
