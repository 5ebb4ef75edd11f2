import KeelHTTP
import NIOCore
import NIOHTTP1
import Testing

@testable import KeelPool

@Suite struct HTTPRequestVarsTests {
    static let server = (name: "example.com", port: "8080")

    static func vars(
        _ method: HTTPMethod = .GET,
        _ uri: String,
        version: HTTPVersion = .http1_1,
        headers: [(String, String)] = [],
        bodyLength: Int = 0,
        remote: SocketAddress? = nil
    ) -> [(name: String, value: String)] {
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
        return HTTPRequestVars.make(
            head: head, target: RequestTarget(parsing: uri)!, bodyLength: bodyLength, remote: remote, server: server)
    }

    static func value(_ name: String, in vars: [(name: String, value: String)]) -> String? {
        vars.first { $0.name == name }?.value
    }

    static func lines(_ vars: [(name: String, value: String)]) -> [String] {
        vars.map { "\($0.name)=\($0.value)" }
    }

    @Test func getRequestGivesTheNginxVarsInOrder() throws {
        let remote = try SocketAddress(ipAddress: "192.0.2.7", port: 51000)
        let vars = Self.vars(
            .GET, "/a%20b/c?x=1&y=%20",
            headers: [("Host", "example.com:8080"), ("User-Agent", "curl/8.5.0")], remote: remote)
        #expect(
            Self.lines(vars) == [
                "QUERY_STRING=x=1&y=%20",
                "REQUEST_METHOD=GET",
                "CONTENT_TYPE=",
                "CONTENT_LENGTH=",
                "REQUEST_URI=/a%20b/c?x=1&y=%20",
                "PATH_INFO=/a b/c",
                "DOCUMENT_ROOT=",
                "SERVER_PROTOCOL=HTTP/1.1",
                "REQUEST_SCHEME=http",
                "REMOTE_ADDR=192.0.2.7",
                "REMOTE_PORT=51000",
                "SERVER_PORT=8080",
                "SERVER_NAME=example.com",
                "SCRIPT_NAME=",
                "HTTP_HOST=example.com:8080",
                "HTTP_USER_AGENT=curl/8.5.0",
            ])
    }

    @Test(arguments: [
        ("/", "/", ""),
        ("/p?", "/p", ""),
        ("/p?a=1?b=2", "/p", "a=1?b=2"),
        ("/p?q=%41", "/p", "q=%41"),
        ("/caf%C3%A9", "/café", ""),
        ("/a%2Fb", "/a/b", ""),
        ("/%zz/x%4", "/%zz/x%4", ""),
        ("/a+b", "/a+b", ""),
        ("*", "*", ""),
    ])
    func pathIsDecodedAndQueryKeptRaw(uri: String, path: String, query: String) {
        let vars = Self.vars(.GET, uri)
        #expect(Self.value("REQUEST_URI", in: vars) == uri)
        #expect(Self.value("PATH_INFO", in: vars) == path)
        #expect(Self.value("QUERY_STRING", in: vars) == query)
    }

    @Test(arguments: [
        (HTTPMethod.GET, "GET"), (.POST, "POST"), (.HEAD, "HEAD"), (.DELETE, "DELETE"), (.OPTIONS, "OPTIONS"),
        (.RAW(value: "PURGE"), "PURGE"),
    ])
    func requestMethod(method: HTTPMethod, name: String) {
        #expect(Self.value("REQUEST_METHOD", in: Self.vars(method, "/")) == name)
    }

    @Test(arguments: [
        (HTTPVersion.http1_0, "HTTP/1.0"), (.http1_1, "HTTP/1.1"), (HTTPVersion(major: 2, minor: 0), "HTTP/2.0"),
    ])
    func serverProtocol(version: HTTPVersion, expected: String) {
        #expect(Self.value("SERVER_PROTOCOL", in: Self.vars(.GET, "/", version: version)) == expected)
    }

    @Test func contentHeadersBecomeCGIVarsNotHTTPVars() {
        let vars = Self.vars(
            .POST, "/upload",
            headers: [
                ("Content-Type", "application/json"), ("Content-Length", "17"), ("Transfer-Encoding", "chunked"),
                ("X-Id", "7"),
            ],
            bodyLength: 17)
        #expect(Self.value("CONTENT_TYPE", in: vars) == "application/json")
        #expect(Self.value("CONTENT_LENGTH", in: vars) == "17")
        #expect(Self.value("HTTP_X_ID", in: vars) == "7")
        let names = vars.map(\.name)
        #expect(!names.contains("HTTP_CONTENT_TYPE"))
        #expect(!names.contains("HTTP_CONTENT_LENGTH"))
        #expect(!names.contains("HTTP_TRANSFER_ENCODING"))
        #expect(names.filter { $0 == "CONTENT_TYPE" }.count == 1)
        #expect(names.filter { $0 == "CONTENT_LENGTH" }.count == 1)
    }

    /// CONTENT_LENGTH is the body received (a chunked body has no header), empty for no body.
    @Test(
        arguments: [
            ([("Content-Length", "5")], 5, "5"),
            ([("Transfer-Encoding", "chunked")], 12, "12"),
            ([], 0, ""),
            ([("Content-Length", "0")], 0, "0"),  // nginx passes a declared empty body's length
        ] as [([(String, String)], Int, String)])
    func contentLengthIsTheBodyReceived(headers: [(String, String)], bodyLength: Int, expected: String) {
        let vars = Self.vars(.POST, "/", headers: headers, bodyLength: bodyLength)
        #expect(Self.value("CONTENT_LENGTH", in: vars) == expected)
    }

    @Test func repeatedHeadersAreJoinedAtTheFirstPosition() {
        let vars = Self.vars(
            .GET, "/",
            headers: [
                ("Accept", "text/html"),
                ("X-Forwarded-For", "192.0.2.1"),
                ("Cookie", "a=1"),
                ("accept", "application/json"),
                ("cookie", "b=2"),
                ("X-Forwarded-For", "192.0.2.2"),
                ("COOKIE", "c=3"),
            ])
        let httpVars = Self.lines(vars.filter { $0.name.hasPrefix("HTTP_") })
        #expect(
            httpVars == [
                "HTTP_ACCEPT=text/html, application/json",
                "HTTP_X_FORWARDED_FOR=192.0.2.1, 192.0.2.2",
                "HTTP_COOKIE=a=1; b=2; c=3",
            ])
    }

    @Test(arguments: [
        ("Host", "HTTP_HOST"),
        ("x-request-id", "HTTP_X_REQUEST_ID"),
        ("Accept-Encoding", "HTTP_ACCEPT_ENCODING"),
        ("DNT", "HTTP_DNT"),
        ("X-Multi-Part-Name", "HTTP_X_MULTI_PART_NAME"),
    ])
    func headerNamesAreUppercasedWithUnderscores(header: String, name: String) {
        let vars = Self.vars(.GET, "/", headers: [(header, "v")])
        #expect(Self.value(name, in: vars) == "v")
    }

    @Test(
        arguments: [
            (try! SocketAddress(ipAddress: "192.0.2.7", port: 51000), "192.0.2.7", "51000"),
            (try! SocketAddress(ipAddress: "::1", port: 443), "::1", "443"),
            (try! SocketAddress(unixDomainSocketPath: "/run/front.sock"), "", ""),
            (nil, "", ""),
        ] as [(SocketAddress?, String, String)])
    func remoteAddress(remote: SocketAddress?, addr: String, port: String) {
        let vars = Self.vars(.GET, "/", remote: remote)
        #expect(Self.value("REMOTE_ADDR", in: vars) == addr)
        #expect(Self.value("REMOTE_PORT", in: vars) == port)
    }

    @Test func serverNameAndPortComeFromTheListener() {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        let vars = HTTPRequestVars.make(
            head: head, target: RequestTarget(parsing: "/")!, bodyLength: 0, remote: nil,
            server: (name: "0.0.0.0", port: "3031"))
        #expect(Self.value("SERVER_NAME", in: vars) == "0.0.0.0")
        #expect(Self.value("SERVER_PORT", in: vars) == "3031")
    }
}
