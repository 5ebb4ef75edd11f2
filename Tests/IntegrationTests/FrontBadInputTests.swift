import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an nginx user expects keel to refuse, and that it keeps serving others meanwhile.
@Suite("keel: bad input", .serialized, .timeLimit(.minutes(2)))
struct FrontBadInputTests {
    static func keel(_ pool: PoolUnderTest, extra: String = "") throws -> FrontUnderTest {
        try FrontUnderTest(config: """
            [[listen]]
            address = "127.0.0.1:{PORT}"
            [log]
            access = "off"
            [limits]
            max_header_size = "4k"
            client_header_timeout = "1s"
            client_max_body_size = "64k"
            \(extra)
            [[route]]
            uwsgi = "unix:\(pool.socketPath!)"
            """)
    }

    /// keel answering every request itself (200 "ok"), with `limits` and extra `route` keys.
    static func fixedResponseKeel(limits: String, route: String = "") throws -> FrontUnderTest {
        try FrontUnderTest(config: """
            [[listen]]
            address = "127.0.0.1:{PORT}"
            [log]
            access = "off"
            [limits]
            \(limits)
            [[route]]
            \(route)
            return = 200
            body = "ok"
            """)
    }

    /// Sends raw bytes on a fresh connection and returns the whole answer up to the close.
    static func raw(_ port: Int, _ request: String) throws -> String {
        let socket = try TestSocket(tcpPort: port)
        try socket.write(request)
        return String(decoding: try socket.readToEOF(), as: UTF8.self)
    }

    @Test func oversizedHeadersAre431() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool)
        let big = String(repeating: "a", count: 8000)
        let answer = try Self.raw(keel.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 431"))
        #expect(try keel.get("/").status == 200)
    }

    @Test(arguments: [
        ("Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two differing Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("a bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("a non-chunked final transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("a space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n"),
    ])
    func smugglingShapesAre400AndClose(shape: String, request: String) throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool)
        let answer = try Self.raw(keel.port, request)
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(shape): \(answer.prefix(80))")
        #expect(!answer.contains("Hello world!\n"), "\(shape) reached the backend")
        #expect(try keel.get("/").status == 200)
    }

    @Test func slowHeadersAre408WhileOthersAreServed() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool)
        let slow = try TestSocket(tcpPort: keel.port)
        try slow.write("GET / HTTP/1.1\r\nHost: x\r\n")
        let started = Date()
        // Meanwhile other clients are served.
        for _ in 0..<5 { #expect(try keel.get("/").status == 200) }
        try slow.write("X-Drip: 1\r\n")
        let answer = String(decoding: try slow.readToEOF(), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 408"))
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func bodyOverTheLimitIs413() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let keel = try Self.keel(pool)
        let declared = try Self.raw(keel.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        #expect(declared.hasPrefix("HTTP/1.1 413"))
        let chunk = String(repeating: "z", count: 40000)
        let hex = String(40000, radix: 16)
        let chunked = try Self.raw(
            keel.port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\(hex)\r\n\(chunk)\r\n\(hex)\r\n\(chunk)\r\n0\r\n\r\n")
        #expect(chunked.hasPrefix("HTTP/1.1 413"))
        #expect(try HTTPClient.request(port: keel.port, method: "POST", "/", body: Array(repeating: 1, count: 60000)).body.count == 60000)
    }

    @Test func pathsOutsideAStaticRootAreRefused() throws {
        let directory = try Harness.makeTempDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/public/sub", withIntermediateDirectories: true)
        try "inside\n".write(toFile: directory + "/public/sub/file.txt", atomically: true, encoding: .utf8)
        try "secret\n".write(toFile: directory + "/secret.txt", atomically: true, encoding: .utf8)
        let keel = try FrontUnderTest(["--static", "/assets=\(directory)/public", "--access-log", "off"])
        let ok = try keel.get("/assets/sub/file.txt")
        #expect(ok.status == 200 && ok.text == "inside\n")
        #expect(ok.header("Content-Type") == "text/plain; charset=utf-8")
        for escape in ["/assets/../secret.txt", "/assets/%2e%2e/secret.txt", "/assets/sub/..%2f..%2fsecret.txt"] {
            let reply = try keel.get(escape)
            #expect(reply.status == 400 || reply.status == 404, "\(escape) → \(reply.status)")
            #expect(!reply.text.contains("secret"))
        }
        #expect(try keel.get("/assets/sub").status == 301)
        #expect(try keel.get("/assets/nope.txt").status == 404)
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func anEarly413ReachesAClientStillSendingItsBody() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let keel = try Self.keel(pool)
        let socket = try TestSocket(tcpPort: keel.port)
        let body = [UInt8](repeating: 7, count: 2 << 20)
        try socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
        // keel answers while the body is still coming; the client keeps sending, as curl -T does.
        _ = try? socket.write(body)
        #expect(try HTTPResponseReader(socket).next().status == 413)
    }

    @Test func aStalledBodyOnAnUnroutedPathIs408NotAHang() throws {
        let keel = try Self.fixedResponseKeel(limits: "client_body_timeout = \"300ms\"", route: "host = \"only.test\"")
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write("POST / HTTP/1.1\r\nHost: other.test\r\nContent-Length: 10\r\n\r\nabc")
        #expect(try HTTPResponseReader(socket).next().status == 408)
    }

    @Test func anIdleConnectionAfterAnAnswerGetsNo408() throws {
        let keel = try Self.fixedResponseKeel(limits: "client_header_timeout = \"200ms\"\nkeepalive_timeout = \"5s\"")
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try HTTPResponseReader(socket).next().text == "ok")
        socket.setTimeout(seconds: 1)
        #expect(throws: (any Error).self, "nothing may arrive on an idle keep-alive connection") { _ = try socket.readSome() }
    }

    @Test func anUpgradeRequestIsAnsweredAndTheConnectionClosed() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try Self.keel(pool)
        let answer = try Self.raw(keel.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200"))
        #expect(answer.contains("Connection: close"))
    }
}
