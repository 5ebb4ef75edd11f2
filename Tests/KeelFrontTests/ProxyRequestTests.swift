#if canImport(Glibc)
import Glibc
#endif
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
            "SERVER_NAME": "example.com", "HTTP_HOST": "example.com:8080",
            "HTTP_X_MULTI": "1, 2", "HTTP_COOKIE": "a=1; b=2",
        ]
        #expect(vars == expected)
    }

    @Test func absoluteFormTargetsHostWinsOverTheHostHeader() throws {
        let request = try Self.request("http://real.test:81/p?x", ["Host": "malformedhost"])
        #expect(request.hostWithPort == "real.test:81")
        #expect(request.rawPath == "/p")
        #expect(request.query == "x")
        let vars = UWSGIParams.vars(for: request, serverName: "real.test", contentLength: 0)
        #expect(vars.first { $0.name == "HTTP_HOST" }?.value == "real.test:81")
        #expect(vars.first { $0.name == "REQUEST_URI" }?.value == "/p?x")
    }

    @Test(arguments: [
        ("/x", [("Host", "a b")], "invalid Host header"),
        ("/x", [("Host", "a/b")], "invalid Host header"),
        ("/x", [("Host", "a..b")], "invalid Host header"),
        ("/x", [("Host", "a"), ("Host", "b")], "more than one Host header"),
        ("/x", [], "HTTP/1.1 request without a Host header"),
        ("x", [("Host", "a")], "authority-form target without CONNECT"),
    ])
    func badHostsAndTargetsAreRejected(uri: String, headers: [(String, String)], reason: String) {
        #expect(throws: ClientRequest.Rejection(status: .badRequest, reason: reason)) {
            try Self.request(uri, HTTPHeaders(headers))
        }
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

    @Test func splitCookieFieldsReachAnHTTPUpstreamAsOne() throws {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "example.com")
        headers.add(name: "cookie", value: "a=1")
        headers.add(name: "Accept", value: "*/*")
        headers.add(name: "cookie", value: "b=2")
        let head = HTTPUpstreamRequest.head(for: try Self.request("/", headers), bodyLength: 0)
        #expect(head.headers["Cookie"] == ["a=1; b=2"])
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
        ("/assets/a/b.css", StaticFileResponder.Resolution.path("a/b.css")),
        ("/assets/", .path("")),
        ("/assets/dir/", .path("dir/")),
        ("/assets/./a", .path("a")),
        ("/assets/%61.css", .path("a.css")),
        ("/assets/caf%C3%A9.txt", .path("café.txt")),
        ("/assets/../etc/passwd", .bad),
        ("/assets/%2e%2e/x", .bad),
        ("/assets/a/..%2f..%2fx", .bad),
        ("/assets/%00", .bad),
        ("/assets/%zz", .bad),
        ("/assets/a%5c..%5cx", .bad),
        ("/assets/%c0%ae%c0%ae/x", .bad),
        ("/assets/.env", .hidden),
        ("/assets/a/.git/config", .hidden),
        ("/assets/%2egit/config", .hidden),
    ])
    func staticPathsStayUnderTheRoot(path: String, expected: StaticFileResponder.Resolution) {
        #expect(StaticFileResponder.resolve(Substring(path), routePrefix: "/assets/", keepsPrefix: false, dotfiles: false) == expected)
    }

    @Test func rootSemanticsKeepThePrefix() {
        #expect(StaticFileResponder.resolve("/assets/a.css", routePrefix: "/assets/", keepsPrefix: true, dotfiles: false) == .path("assets/a.css"))
        #expect(StaticFileResponder.resolve("/assets/.well", routePrefix: "/assets/", keepsPrefix: false, dotfiles: true) == .path(".well"))
    }

    @Test(arguments: [
        ("bytes=0-99", 1000, ByteRange.part(0..<100)),
        ("bytes=900-", 1000, .part(900..<1000)),
        ("bytes=-100", 1000, .part(900..<1000)),
        ("bytes=-5000", 1000, .part(0..<1000)),
        ("bytes=990-2000", 1000, .part(990..<1000)),
        ("bytes=1000-", 1000, .unsatisfiable),
        ("bytes=-0", 1000, .unsatisfiable),
        ("bytes=5-3", 1000, .whole),
        ("bytes=0-1,5-6", 1000, .whole),
        ("items=0-1", 1000, .whole),
        ("bytes=x-1", 1000, .whole),
    ])
    func byteRanges(header: String, size: Int, expected: ByteRange) {
        #expect(ByteRange.parse(header, size: size) == expected)
    }

    @Test func conditionalRequests() {
        let etag = "\"5f-10\""
        #expect(Conditional.notModified(["If-None-Match": etag], etag: etag, modified: 100))
        #expect(Conditional.notModified(["If-None-Match": "W/\(etag)"], etag: etag, modified: 100))
        #expect(Conditional.notModified(["If-None-Match": "*"], etag: etag, modified: 100))
        #expect(!Conditional.notModified(["If-None-Match": "\"other\""], etag: etag, modified: 100))
        let date = StaticFileResponder.httpDate(100)
        #expect(Conditional.parseHTTPDate(date) == 100)
        #expect(Conditional.notModified(["If-Modified-Since": date], etag: etag, modified: 100))
        #expect(!Conditional.notModified(["If-Modified-Since": StaticFileResponder.httpDate(99)], etag: etag, modified: 100))
        // If-None-Match wins over If-Modified-Since.
        #expect(!Conditional.notModified(["If-None-Match": "\"x\"", "If-Modified-Since": date], etag: etag, modified: 100))
        #expect(Conditional.parseHTTPDate("yesterday") == nil)
        #expect(Conditional.ifRangeAllows(["If-Range": etag], etag: etag, modified: 100))
        #expect(!Conditional.ifRangeAllows(["If-Range": "\"old\""], etag: etag, modified: 100))
        #expect(Conditional.ifRangeAllows(["If-Range": date], etag: etag, modified: 100))
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

@Suite struct HTTPDateClockTests {
    /// Checked against dates whose IMF-fixdate is known (RFC 9110's own example among them) and leap days.
    @Test func formatsIMFFixdates() {
        #expect(HTTPDateClock.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateClock.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDateClock.format(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDateClock.format(1_709_164_799) == "Wed, 28 Feb 2024 23:59:59 GMT")
        #expect(HTTPDateClock.format(1_796_103_683) == "Tue, 01 Dec 2026 05:41:23 GMT")
        #expect(HTTPDateClock.format(4_107_456_000) == "Sun, 28 Feb 2100 00:00:00 GMT")
        #expect(HTTPDateClock.format(4_107_542_400) == "Mon, 01 Mar 2100 00:00:00 GMT", "2100 is no leap year")
    }

    @Test func theClockGivesNow() {
        let clock = HTTPDateClock()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let before = HTTPDateClock.format(now.tv_sec)
        let value = clock.now
        #expect(value == before || value == HTTPDateClock.format(now.tv_sec + 1))
    }
}
