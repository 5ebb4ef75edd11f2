import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `Date` (RFC 9110 §6.6.1) and `Server` (nginx's `server_tokens`) on every response keel sends, whoever made it.
@Suite("keel: Date and Server", .serialized, .timeLimit(.minutes(2)))
struct FrontResponseHeadersTests {
    /// A valid IMF-fixdate within a few seconds of now.
    static func expectCurrentIMFFixdate(_ value: String?, _ what: String) {
        guard let value else {
            Issue.record("\(what): no Date header")
            return
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        guard let date = formatter.date(from: value), formatter.string(from: date) == value else {
            Issue.record("\(what): Date '\(value)' is not an IMF-fixdate")
            return
        }
        #expect(abs(date.timeIntervalSinceNow) < 5, "\(what): Date '\(value)' is not now")
    }

    static func config(tokens: Bool?, directory: String, socket: String) -> String {
        """
        \(tokens.map { "server_tokens = \($0)" } ?? "")
        [[listen]]
        address = "127.0.0.1:{PORT}"
        [log]
        access = "off"
        [[route]]
        path = "/files/"
        static = "\(directory)"
        [[route]]
        path = "/fixed"
        return = 200
        body = "fixed\\n"
        [[route]]
        path = "/app"
        uwsgi = "unix:\(socket)"
        """
    }

    /// Every kind of answer: a file, a 304, a 404, a fixed route, a proxied one, a parser's 400, a head timeout's 408.
    @Test(arguments: [nil, true, false] as [Bool?])
    func everyResponseCarriesDateAndServer(tokens: Bool?) throws {
        let site = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: site) }
        try "a file\n".write(toFile: site + "/a.txt", atomically: true, encoding: .utf8)
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try FrontUnderTest(config: Self.config(tokens: tokens, directory: site, socket: pool.socketPath!))
        let server = tokens == false ? "keel" : try #require(try keel.get("/fixed").header("Server"))
        if tokens != false {
            #expect(server.hasPrefix("keel/") && server.count > 5, "server_tokens on (the default) names the version: \(server)")
        }
        let file = try keel.get("/files/a.txt")
        var replies: [(String, HTTPReply)] = [
            ("static 200", file),
            ("static 304", try keel.get("/files/a.txt", headers: [("If-None-Match", file.header("ETag") ?? "")])),
            ("404", try keel.get("/files/missing")),
            ("fixed", try keel.get("/fixed")),
            ("proxied", try keel.get("/app")),
        ]
        let malformed = try TestSocket(tcpPort: keel.port)
        try malformed.write("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        replies.append(("parser's 400", try HTTPResponseReader(malformed).next()))
        #expect(replies.map(\.1.status) == [200, 304, 404, 200, 200, 400])
        for (what, reply) in replies {
            Self.expectCurrentIMFFixdate(reply.header("Date"), what)
            #expect(reply.header("Server") == server, "\(what)")
            #expect(reply.headers.filter { $0.0.lowercased() == "date" }.count == 1, "\(what): one Date")
        }
    }

    @Test func anUpstreamsOwnDateAndServerAreKept() throws {
        let app = try WSGIPool("own_date_server", http: false, uwsgi: true)
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + app.pool.socketPath!, "--access-log", "off"])
        let reply = try keel.get("/")
        #expect(reply.text == "mine\n")
        #expect(reply.header("Date") == "Thu, 01 Jan 2015 00:00:00 GMT")
        #expect(reply.header("Server") == "app/1.0")
        #expect(reply.headers.filter { $0.0.lowercased() == "server" }.count == 1)
    }

    @Test func aHeadTimeoutsAnswerIsDatedToo() throws {
        let keel = try FrontUnderTest(
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [limits]
                client_header_timeout = "1s"
                [[route]]
                return = 200
                """)
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n")
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.status == 408)
        Self.expectCurrentIMFFixdate(reply.header("Date"), "408")
        #expect(reply.header("Server")?.hasPrefix("keel") == true)
    }
}
