import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Keep-alive limits, connection limit, 100-continue, HTTP upstreams with keep-alive, and log reopening.
@Suite("keel: limits, HTTP upstreams, logs", .serialized, .timeLimit(.minutes(2)))
struct FrontLimitsTests {
    static func keel(_ pool: PoolUnderTest, limits: String, log: String = "access = \"off\"") throws -> FrontUnderTest {
        try FrontUnderTest(config: """
            [[listen]]
            address = "127.0.0.1:{PORT}"
            [log]
            \(log)
            [limits]
            \(limits)
            [[route]]
            uwsgi = "unix:\(pool.socketPath!)"
            """)
    }

    @Test func keepaliveRequestsClosesAfterTheNth() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool, limits: "keepalive_requests = 3")
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        for index in 1...3 {
            try socket.write("GET /\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
            let reply = try reader.next()
            #expect(reply.status == 200)
            #expect((reply.header("Connection") == "close") == (index == 3), "request \(index)")
        }
        #expect(try socket.readSome().isEmpty, "closed after the third response")
    }

    @Test func idleKeepaliveConnectionsAreClosedAfterTheTimeout() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool, limits: "keepalive_timeout = \"300ms\"")
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let reader = HTTPResponseReader(socket)
        #expect(try reader.next().status == 200)
        let started = Date()
        #expect(try socket.readSome().isEmpty)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func maxConnectionsHoldsNewConnectionsInTheBacklogUntilOneCloses() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool, limits: "max_connections = 2")
        let first = try TestSocket(tcpPort: keel.port)
        let second = try TestSocket(tcpPort: keel.port)
        for socket in [first, second] {
            try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try HTTPResponseReader(socket).next().status == 200)
        }
        // The third connects (the kernel's backlog) but is not served while two are open.
        let third = try TestSocket(tcpPort: keel.port)
        third.setTimeout(seconds: 1)
        try third.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(throws: (any Error).self) { _ = try third.readSome() }
        third.setTimeout(seconds: 10)
        shutdown(first.fd, Int32(SHUT_RDWR))  // the first client goes away: keel closes its side, room for one more
        #expect(try HTTPResponseReader(third).next().status == 200)
        #expect(keel.log.contains("max_connections"))
    }

    @Test func expect100ContinueGetsAnInterimResponseThenTheAnswer() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let keel = try Self.keel(pool, limits: "client_max_body_size = \"1k\"")
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        try socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        #expect(try reader.next().status == 100)
        try socket.write("hello")
        #expect(try reader.next().text == "hello")
        // Too large: 413 straight away, no 100, no body read.
        let big = try TestSocket(tcpPort: keel.port)
        try big.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        #expect(try HTTPResponseReader(big).next().status == 413)
    }

    @Test func httpUpstreamKeepsConnectionsAliveAndSetsForwardingHeaders() throws {
        let pool = try PoolUnderTest(http: true, uwsgi: false, ["--app", "env"])
        let keel = try FrontUnderTest(["--proxy", "127.0.0.1:\(pool.httpPort!)", "--access-log", "off", "--event-loops", "1"])
        var upstreamPorts = Set<String>()
        for _ in 0..<10 {
            let reply = try keel.get("/p?q=1", headers: [("X-Forwarded-For", "203.0.113.9")])
            #expect(reply.status == 200)
            let vars = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
            #expect(vars["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 127.0.0.1")
            #expect(vars["HTTP_X_REAL_IP"] == "127.0.0.1")
            #expect(vars["HTTP_X_FORWARDED_PROTO"] == "http")
            #expect(vars["HTTP_HOST"] == "127.0.0.1:\(keel.port)")
            #expect(vars["QUERY_STRING"] == "q=1")
            upstreamPorts.insert(vars["REMOTE_PORT"] ?? "?")
        }
        #expect(upstreamPorts.count == 1, "ten requests over one pooled upstream connection: \(upstreamPorts)")
    }

    @Test func usr1ReopensTheAccessLogAfterRotation() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool, limits: "", log: "access = \"{DIR}/access.log\"")
        let path = keel.directory + "/access.log"
        #expect(try keel.get("/before").status == 200)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        kill(keel.process.pid, SIGUSR1)
        try Harness.waitUntil("the log to be reopened", seconds: 10) { FileManager.default.fileExists(atPath: path) }
        #expect(try keel.get("/after").status == 200)
        try Harness.waitUntil("the new line in the new file", seconds: 10) {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains("GET /after")
        }
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8).contains("GET /before"))
    }
}
