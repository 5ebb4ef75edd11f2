import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A Python app sees the same environ whether the request came through keel (uwsgi to keel-pool's --socket) or
/// straight to keel-pool's --http-socket: both build their CGI vars with KeelHTTP's CGIVars.
@Suite("CGI vars: keel → --socket equals --http-socket", .serialized, .timeLimit(.minutes(2)))
struct CGIVarsComparisonTests {
    /// Vars that name the connection, not the request, and so legitimately differ between the two paths:
    /// - REMOTE_PORT: two TCP connections (the test's to keel and the test's to keel-pool), two client ports;
    /// - SERVER_PORT: keel's listening port vs keel-pool's HTTP port;
    /// - SERVER_NAME: keel sends nginx's `$server_name` (here the request's host, no server name configured),
    ///   keel-pool its own listening address, as uWSGI's http-socket does.
    static let connectionVars: Set<String> = ["REMOTE_PORT", "SERVER_PORT", "SERVER_NAME"]

    @Test func environsAreEqualButForTheConnection() throws {
        let app = try WSGIPool("environ_app", http: true, uwsgi: true)
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + app.pool.socketPath!, "--access-log", "off"])
        // Duplicates, cookies, an underscore twin of X-Real-IP, an absolute-form target whose host must win over
        // Host, a percent-encoded (and UTF-8) path, a query, a body with its type.
        let request =
            "POST http://app.test:8080/caf%C3%A9/p%61th?x=1&y=%20 HTTP/1.1\r\nHost: ignored.test\r\n"
            + "X-Dup: a\r\nx-dup: b\r\nCookie: c=1\r\nCookie: d=2\r\nX-Real-IP: 192.0.2.1\r\nX_Real_IP: 6.6.6.6\r\n"
            + "Transfer_Encoding: chunked\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n"
            + "\r\nhello"
        let viaKeel = try Self.environ(port: keel.port, request)
        let direct = try Self.environ(port: app.port, request)

        let names = Set(viaKeel.keys).union(direct.keys)
        for name in names.subtracting(Self.connectionVars).sorted() {
            #expect(
                viaKeel[name] == direct[name], "\(name): via keel \(viaKeel[name] ?? "-"), direct \(direct[name] ?? "-")")
        }
        for name in Self.connectionVars { #expect(viaKeel[name] != nil && direct[name] != nil, "\(name) missing") }
        // What both must show, not only agree on.
        #expect(direct["HTTP_X_REAL_IP"] == "192.0.2.1", "X_Real_IP must not fold into X-Real-IP")
        #expect(direct["HTTP_TRANSFER_ENCODING"] == nil)
        #expect(direct["HTTP_X_DUP"] == "a, b")
        #expect(direct["HTTP_COOKIE"] == "c=1; d=2")
        #expect(direct["HTTP_HOST"] == "app.test:8080")
        #expect(direct["REQUEST_URI"] == "/caf%C3%A9/p%61th?x=1&y=%20")
        #expect(direct["PATH_INFO"] == "/caf\u{C3}\u{A9}/path", "PEP 3333: the path's bytes as latin-1")
        #expect(direct["QUERY_STRING"] == "x=1&y=%20")
        #expect(direct["CONTENT_TYPE"] == "text/plain" && direct["CONTENT_LENGTH"] == "5")
        #expect(direct["HTTP_CONTENT_TYPE"] == nil && direct["HTTP_CONTENT_LENGTH"] == nil)
    }

    /// The app's environ (JSON), every value as its JSON text so lists and booleans compare too.
    static func environ(port: Int, _ request: String) throws -> [String: String] {
        let socket = try TestSocket(tcpPort: port)
        try socket.write(request)
        let reply = try HTTPResponseReader(socket).next()
        guard reply.status == 200 else { throw HarnessError("status \(reply.status): \(reply.text)") }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
        return try object.mapValues { value in
            let data = try JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .fragmentsAllowed])
            return String(decoding: data, as: UTF8.self)
        }.mapValues { $0.hasPrefix("[\"") ? String(try Self.unquote($0)) : $0 }
    }

    private static func unquote(_ json: String) throws -> String {
        let array = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
        return array?.first ?? json
    }
}
