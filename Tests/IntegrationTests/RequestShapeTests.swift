import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One table of raw request shapes (RFC 9110/9112, as nginx judges them) that both servers must answer alike:
/// keel and keel-pool's --http-socket share KeelHTTP's RequestHeadCheck. A refusal is answered, logged in one line
/// and followed by the close.
@Suite("request shapes: keel and keel-pool --http-socket", .serialized, .timeLimit(.minutes(2)))
struct RequestShapeTests {
    struct Shape: Sendable {
        var name: String
        var request: String
        /// nil: accepted (the app or route answers); else the refusal's status and the reason the log must show.
        var refusal: (status: Int, reason: String)?
    }

    static let shapes: [Shape] = [
        Shape(name: "plain GET", request: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        Shape(name: "HTTP/1.0 without Host", request: "GET / HTTP/1.0\r\n\r\n"),
        Shape(name: "absolute form without Host", request: "GET http://x:81/p?q HTTP/1.1\r\nConnection: close\r\n\r\n"),
        Shape(
            name: "chunked body",
            request: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n0\r\n\r\n"),
        // Framed by Content-Length: "Transfer_Encoding" is not Transfer-Encoding (were it folded, "hello" would be
        // read as a chunk size and the request refused).
        Shape(
            name: "Transfer_Encoding beside Content-Length",
            request: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n"
                + "Connection: close\r\n\r\nhello"),
        Shape(
            name: "HTTP/1.0 with Transfer-Encoding: chunked",
            request: "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            refusal: (400, "HTTP/1.0 request with Transfer-Encoding")),
        Shape(
            name: "gzip, chunked",
            request: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            refusal: (501, "unsupported Transfer-Encoding \"gzip, chunked\"")),
        Shape(
            name: "identity, chunked",
            request: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
            refusal: (501, "unsupported Transfer-Encoding \"identity, chunked\"")),
        Shape(
            name: "two Host headers", request: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            refusal: (400, "more than one Host header")),
        Shape(
            name: "HTTP/1.1 without Host", request: "GET / HTTP/1.1\r\n\r\n",
            refusal: (400, "HTTP/1.1 request without a Host header")),
        Shape(
            name: "GET *", request: "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            refusal: (400, "\"*\" target with a method other than OPTIONS")),
        Shape(
            name: "broken authority", request: "PUT s://]ufd/: HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            refusal: (400, "invalid request target")),
        Shape(
            name: "userinfo in the authority", request: "GET http://user@x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            refusal: (400, "invalid request target")),
    ]

    @Test func keelAnswersTheTable() throws {
        let keel = try FrontUnderTest(config: """
            [[listen]]
            address = "127.0.0.1:{PORT}"
            [log]
            access = "off"
            level = "info"
            [[route]]
            return = 200
            body = "ok"
            """)
        try Self.run(Self.shapes, port: keel.port, server: "keel") { keel.log }
    }

    @Test func keelPoolAnswersTheTable() throws {
        let pool = try PoolUnderTest(["--app", "hello"])
        try Self.run(Self.shapes, port: pool.httpPort!, server: "keel-pool") { pool.log }
    }

    /// Sends each shape on its own connection; every answer must end with the close (accepted ones ask for it).
    static func run(_ shapes: [Shape], port: Int, server: String, log: () -> String) throws {
        for shape in shapes {
            let socket = try TestSocket(tcpPort: port)
            socket.setTimeout(seconds: 5)
            try socket.write(shape.request)
            let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
            let status = raw.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
            if let refusal = shape.refusal {
                #expect(status == refusal.status, "\(server), \(shape.name): \(raw.prefix(80))")
                #expect(raw.contains("Connection: close"), "\(server), \(shape.name): \(raw.prefix(200))")
                #expect(
                    !raw.contains("Hello world!") && !raw.hasSuffix("ok"), "\(server), \(shape.name) reached the app")
                try Harness.waitUntil("\(server) to log \(shape.name)", seconds: 5) { log().contains(refusal.reason) }
            } else {
                #expect(status == 200, "\(server), \(shape.name): \(raw.prefix(80))")
            }
        }
    }
}
