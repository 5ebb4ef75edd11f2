import NIOCore
import NIOHTTP1
import Testing

@testable import KeelFront

@Suite struct ProxyRequestTests {
    static let connection = ClientRequest.ConnectionInfo(
        remoteAddress: "10.0.0.7", remotePort: 51000, serverAddress: "127.0.0.1", serverPort: 8080, isTLS: false)

    static func request(_ uri: String, _ headers: HTTPHeaders = ["Host": "example.com:8080"], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1) throws -> ClientRequest {
        try ClientRequest(head: HTTPRequestHead(version: version, method: method, uri: uri, headers: headers), connection: connection, startTime: .now())
    }

    @Test func uwsgiVarsAreWhatNginxUwsgiParamsSend() throws {
        var headers: HTTPHeaders = ["Host": "example.com:8080", "Content-Type": "text/plain", "Content-Length": "5"]
        headers.add(name: "X-Multi", value: "1")
        headers.add(name: "x-multi", value: "2")
        headers.add(name: "Cookie", value: "a=1")
        headers.add(name: "Cookie", value: "b=2")
        headers.add(name: "Bad_Name", value: "spoof")
        let request = try Self.request("/a%20b/c?q=1", headers, method: .POST)
        let vars = Dictionary(UWSGIParams.vars(for: request, serverName: "example.com", contentLength: 5).map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let expected: [String: String] = [
            "QUERY_STRING": "q=1", "REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "5",
            "REQUEST_URI": "/a%20b/c?q=1", "PATH_INFO": "/a b/c", "DOCUMENT_ROOT": "", "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_SCHEME": "http", "REMOTE_ADDR": "10.0.0.7", "REMOTE_PORT": "51000", "SERVER_PORT": "8080",
            "SERVER_NAME": "example.com", "HTTP_HOST": "example.com:8080", "HTTP_CONTENT_TYPE": "text/plain",
            "HTTP_X_MULTI": "1, 2", "HTTP_COOKIE": "a=1; b=2",
        ]
        #expect(vars == expected)
    }

    @Test func absoluteFormTargetsHostWinsOverTheHostHeader() throws {
        let request = try Self.request("http://real.test:81/p?x", ["Host": "malformedhost"])
        #expect(request.hostWithPort == "real.test:81")
        #expect(request.rawPath == "/p")
        #expect(request.query == "x")
        let vars = UWSGIParams.headerVars(request.head.headers, effectiveHost: request.hostWithPort)
        #expect(vars.first { $0.name == "HTTP_HOST" }?.value == "real.test:81")
    }

    @Test(arguments: [
        ("/x", [("Host", "a b")], ClientRequest.Rejection.invalidHost),
        ("/x", [("Host", "a/b")], .invalidHost),
        ("/x", [("Host", "a..b")], .invalidHost),
        ("/x", [("Host", "a"), ("Host", "b")], .invalidHost),
        ("/x", [], .missingHost),
        ("x", [("Host", "a")], .invalidTarget),
    ])
    func badHostsAndTargetsAreRejected(uri: String, headers: [(String, String)], rejection: ClientRequest.Rejection) {
        #expect(throws: rejection) { try Self.request(uri, HTTPHeaders(headers)) }
    }

    @Test func http10MayOmitHost() throws {
        #expect(try Self.request("/", [:], version: .http1_0).hostWithPort == nil)
    }

    @Test func httpUpstreamHeadDropsHopByHopAndAddsForwarding() throws {
        var headers: HTTPHeaders = ["Host": "example.com", "Connection": "keep-alive, X-Secret", "X-Secret": "s", "Keep-Alive": "5"]
        headers.add(name: "X-Forwarded-For", value: "1.2.3.4")
        headers.add(name: "X-Real-IP", value: "spoofed")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Accept", value: "*/*")
        headers.add(name: "X_Real_IP", value: "1.2.3.4")
        let head = HTTPUpstreamRequest.head(for: try Self.request("/p?q", headers, method: .POST), bodyLength: 12)
        #expect(head.version == .http1_1)
        #expect(head.uri == "/p?q")
        #expect(head.headers["Host"] == ["example.com"])
        #expect(head.headers["X-Forwarded-For"] == ["1.2.3.4, 10.0.0.7"])
        #expect(head.headers["X-Real-IP"] == ["10.0.0.7"])
        #expect(head.headers["X-Forwarded-Proto"] == ["http"])
        #expect(head.headers["Content-Length"] == ["12"])
        #expect(head.headers["Accept"] == ["*/*"])
        for gone in ["Connection", "Keep-Alive", "X-Secret", "Transfer-Encoding", "X_Real_IP"] { #expect(!head.headers.contains(name: gone), "\(gone)") }
    }

    @Test func upstreamResponseHeadersLoseHopByHop() {
        let headers = HTTPUpstreamRequest.responseHeaders(from: [
            "Content-Length": "3", "Connection": "close, X-Hop", "X-Hop": "1", "Transfer-Encoding": "chunked", "X-App": "a",
        ])
        #expect(headers["Content-Length"] == ["3"])
        #expect(headers["X-App"] == ["a"])
        #expect(!headers.contains(name: "X-Hop") && !headers.contains(name: "Connection") && !headers.contains(name: "Transfer-Encoding"))
    }

    @Test(arguments: [
        ("/assets/a/b.css", "/assets/", "a/b.css" as String?),
        ("/assets/", "/assets/", ""),
        ("/assets/dir/", "/assets/", "dir/"),
        ("/assets/./a", "/assets/", "a"),
        ("/assets/%61.css", "/assets/", "a.css"),
        ("/assets/../etc/passwd", "/assets/", nil),
        ("/assets/%2e%2e/x", "/assets/", nil),
        ("/assets/a/..%2f..%2fx", "/assets/", nil),
        ("/assets/%00", "/assets/", nil),
        ("/assets/%zz", "/assets/", nil),
    ])
    func staticPathsStayUnderTheRoot(path: String, prefix: String, expected: String?) {
        #expect(StaticFileResponder.relativePath(Substring(path), routePrefix: prefix) == expected)
    }

    @Test func redirectAppendsTheRestOfThePathToALocationEndingInSlash() throws {
        let route = FrontConfiguration.Route(pathPrefix: "/old/", action: .redirect(location: "https://new.test/", status: 301))
        #expect(ProxyHandler.redirectTarget("https://new.test/", route: route, request: try Self.request("/old/a/b?x=1")) == "https://new.test/a/b?x=1")
        #expect(ProxyHandler.redirectTarget("https://new.test/page", route: route, request: try Self.request("/old/a")) == "https://new.test/page")
    }

    @Test func onlyIdempotentRequestsAreResentOnAStaleKeepaliveConnection() {
        #expect(UpstreamExchange.isIdempotent(.GET) && UpstreamExchange.isIdempotent(.PUT) && UpstreamExchange.isIdempotent(.DELETE))
        #expect(!UpstreamExchange.isIdempotent(.POST) && !UpstreamExchange.isIdempotent(.PATCH))
    }
}
