import NIOHTTP1
import Testing

@testable import KeelHTTP

/// The head rules both servers apply, as a table; IntegrationTests' RequestShapeTests send the same shapes raw
/// to keel and to keel-pool's --http-socket.
@Suite struct RequestHeadCheckTests {
    static func head(_ method: HTTPMethod, _ uri: String, _ version: HTTPVersion, _ headers: [(String, String)])
        -> HTTPRequestHead
    {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    static func head(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)]) -> HTTPRequestHead {
        head(method, uri, .http1_1, headers)
    }

    @Test(arguments: [
        head(.GET, "/", [("Host", "x")]),
        head(.GET, "/", .http1_0, []),
        head(.OPTIONS, "*", [("Host", "x")]),
        head(.GET, "http://h:81/p", []),
        head(.GET, "http://h/p", [("Host", "other")]),
        head(.POST, "/", [("Host", "x"), ("Transfer-Encoding", "chunked")]),
        head(.POST, "/", [("Host", "x"), ("Transfer-Encoding", "Chunked")]),
        head(.POST, "/", [("Host", "x"), ("Content-Length", "5"), ("Transfer_Encoding", "chunked")]),
        head(.GET, "/", .http1_0, [("Transfer_Encoding", "chunked")]),
        head(.GET, "/", [("Host", "x"), ("Host_", "y")]),
    ])
    func accepted(head: HTTPRequestHead) {
        guard case .accepted = RequestHeadCheck.check(head) else {
            Issue.record("\(head.method) \(head.uri) \(head.headers) was refused: \(RequestHeadCheck.check(head))")
            return
        }
    }

    @Test(arguments: [
        (head(.POST, "/", .http1_0, [("Transfer-Encoding", "chunked")]), 400,
         "HTTP/1.0 request with Transfer-Encoding"),
        (head(.POST, "/", [("Host", "x"), ("Transfer-Encoding", "gzip, chunked")]), 501,
         "unsupported Transfer-Encoding \"gzip, chunked\""),
        (head(.POST, "/", [("Host", "x"), ("Transfer-Encoding", "identity"), ("Transfer-Encoding", "chunked")]), 501,
         "unsupported Transfer-Encoding \"identity, chunked\""),
        (head(.POST, "/", [("Host", "x"), ("Transfer-Encoding", "chunked, gzip")]), 400,
         "Transfer-Encoding without chunked as the final coding"),
        (head(.GET, "/", [("Host", "a"), ("Host", "b")]), 400, "more than one Host header"),
        (head(.GET, "/", [("Host", "a"), ("host", "a")]), 400, "more than one Host header"),
        (head(.GET, "/", []), 400, "HTTP/1.1 request without a Host header"),
        (head(.GET, "/", [("Host", "a..b")]), 400, "invalid Host header"),
        (head(.GET, "*", [("Host", "x")]), 400, "\"*\" target with a method other than OPTIONS"),
        (head(.PUT, "s://]ufd/:", [("Host", "x")]), 400, "invalid request target"),
        (head(.GET, "http://user@host/", [("Host", "x")]), 400, "invalid request target"),
        (head(.GET, "x", [("Host", "x")]), 400, "authority-form target without CONNECT"),
        (head(.CONNECT, "example.com:443", [("Host", "example.com")]), 405, "CONNECT is not supported"),
    ] as [(HTTPRequestHead, Int, String)])
    func refused(head: HTTPRequestHead, status: Int, reason: String) {
        #expect(RequestHeadCheck.check(head) == .refused(HTTPResponseStatus(statusCode: status), reason: reason))
    }
}

@Suite struct ConnectionPersistenceTests {
    @Test(arguments: [
        (HTTPVersion.http1_1, [("Expect", "100-continue")], true),
        (.http1_1, [("Expect", "100-Continue")], true),
        (.http1_1, [("Expect", "something-else")], false),
        (.http1_1, [], false),
        (.http1_0, [("Expect", "100-continue")], false),
    ] as [(HTTPVersion, [(String, String)], Bool)])
    func expectsContinue(version: HTTPVersion, headers: [(String, String)], expected: Bool) {
        let head = HTTPRequestHead(version: version, method: .POST, uri: "/", headers: HTTPHeaders(headers))
        #expect(head.expectsContinue == expected)
    }

    @Test(arguments: [
        (HTTPVersion.http1_1, [], true),
        (.http1_1, [("Connection", "close")], false),
        (.http1_0, [], false),
        (.http1_0, [("Connection", "keep-alive")], true),
    ] as [(HTTPVersion, [(String, String)], Bool)])
    func requested(version: HTTPVersion, headers: [(String, String)], expected: Bool) {
        let head = HTTPRequestHead(version: version, method: .GET, uri: "/", headers: HTTPHeaders(headers))
        #expect(ConnectionPersistence.requested(by: head) == expected)
    }

    /// An HTTP/1.0 body of unknown length ends with the close; HEAD has no body to end.
    @Test(arguments: [
        (HTTPVersion.http1_1, false, false, true), (.http1_0, false, true, true), (.http1_0, false, false, false),
        (.http1_0, true, false, true),
    ])
    func keepsAlive(version: HTTPVersion, isHead: Bool, hasLength: Bool, expected: Bool) {
        #expect(
            ConnectionPersistence.keepsAlive(
                requested: true, requestVersion: version, isHeadRequest: isHead, responseHasLength: hasLength)
                == expected)
        #expect(
            !ConnectionPersistence.keepsAlive(
                requested: false, requestVersion: version, isHeadRequest: isHead, responseHasLength: hasLength))
    }

    @Test(arguments: [
        (HTTPVersion.http1_1, true, nil), (.http1_1, false, "close"), (.http1_0, true, "keep-alive"),
        (.http1_0, false, "close"),
    ] as [(HTTPVersion, Bool, String?)])
    func connectionHeader(version: HTTPVersion, keepAlive: Bool, expected: String?) {
        var headers = HTTPHeaders()
        ConnectionPersistence.setConnectionHeader(&headers, version: version, keepAlive: keepAlive)
        #expect(headers.first(name: "connection") == expected)
    }
}
