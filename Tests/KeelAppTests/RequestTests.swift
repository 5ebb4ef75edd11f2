import NIOCore
import Testing

@testable import KeelApp

@Suite struct RequestTests {
    static let nginxVars: [(name: String, value: String)] = [
        ("QUERY_STRING", "ms=30&flag&empty=&eq=a=b&ms=99"),
        ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", "application/json"),
        ("CONTENT_LENGTH", "17"),
        ("REQUEST_URI", "/api/items?ms=30&flag&empty=&eq=a=b&ms=99"),
        ("PATH_INFO", "/api/items"),
        ("SERVER_PROTOCOL", "HTTP/2.0"),
        ("HTTP_HOST", "example.com"),
        ("HTTP_X_CUSTOM_ID", "abc-123"),
        ("HTTP_X_CUSTOM_ID", "second"),
        ("HTTP_COOKIE", "a=1; b=2"),
    ]

    @Test func accessorsReadTheNginxVars() {
        let request = Request(vars: Self.nginxVars)
        #expect(request.method == "POST")
        #expect(request.path == "/api/items")
        #expect(request.query == "ms=30&flag&empty=&eq=a=b&ms=99")
        #expect(request.uri == "/api/items?ms=30&flag&empty=&eq=a=b&ms=99")
        #expect(request.requestLine == "POST /api/items?ms=30&flag&empty=&eq=a=b&ms=99 HTTP/2.0")
        #expect(request.body.readableBytes == 0)
    }

    @Test func subscriptReturnsTheFirstValue() {
        let request = Request(vars: Self.nginxVars)
        #expect(request["HTTP_X_CUSTOM_ID"] == "abc-123")
        #expect(request["HTTP_HOST"] == "example.com")
        #expect(request["http_host"] == nil)
        #expect(request["MISSING"] == nil)
    }

    @Test(arguments: [
        ("Content-Type", "application/json"),
        ("content-type", "application/json"),
        ("CONTENT_TYPE", "application/json"),
        ("Content-Length", "17"),
        ("X-Custom-Id", "abc-123"),
        ("x-custom-id", "abc-123"),
        ("Host", "example.com"),
        ("Cookie", "a=1; b=2"),
    ])
    func headerLooksUpTheVar(name: String, expected: String) {
        #expect(Request(vars: Self.nginxVars).header(name) == expected)
    }

    @Test(arguments: ["X-Missing", "Accept", "Query-String", "Request-Method"])
    func missingHeaderIsNil(name: String) {
        #expect(Request(vars: Self.nginxVars).header(name) == nil)
    }

    @Test func contentHeadersAreNotLookedUpUnderHTTPPrefix() {
        let request = Request(vars: [("HTTP_CONTENT_TYPE", "text/html")])
        #expect(request.header("Content-Type") == nil)
        #expect(Request(vars: [("HTTP_X_ID", "7")]).header("X-Id") == "7")
    }

    @Test func defaultsWhenVarsAreMissing() {
        let request = Request(vars: [])
        #expect(request.method == "GET")
        #expect(request.path == "/")
        #expect(request.query == "")
        #expect(request.uri == "/")
        #expect(request.requestLine == "GET / HTTP/1.1")
    }

    @Test(
        arguments: [
            ([("PATH_INFO", "/p")], "/p"),
            ([("PATH_INFO", "/p"), ("QUERY_STRING", "a=1")], "/p?a=1"),
            ([("QUERY_STRING", "a=1")], "/?a=1"),
            ([("PATH_INFO", "/p"), ("QUERY_STRING", "a=1"), ("REQUEST_URI", "/raw%20uri?a=1")], "/raw%20uri?a=1"),
        ] as [([(name: String, value: String)], String)])
    func uriFallsBackToPathAndQuery(vars: [(name: String, value: String)], expected: String) {
        #expect(Request(vars: vars).uri == expected)
    }

    @Test(
        arguments: [
            ("ms", "30"),
            ("flag", ""),
            ("empty", ""),
            ("eq", "a=b"),
            ("missing", nil),
            ("m", nil),
            ("", nil),
        ] as [(String, String?)])
    func queryParameter(name: String, expected: String?) {
        let value = Request(vars: Self.nginxVars).queryParameter(name)
        #expect(value.map(String.init) == expected)
    }

    @Test(arguments: ["", "&&", "=", "a"])
    func queryParameterInOddQueries(query: String) {
        let request = Request(vars: [("QUERY_STRING", query)])
        #expect(request.queryParameter("ms") == nil)
    }

    @Test func bodyIsKept() {
        var body = ByteBuffer()
        body.writeBytes([0, 1, 2, 0xFF])
        let request = Request(vars: [], body: body)
        #expect(Array(request.body.readableBytesView) == [0, 1, 2, 0xFF])
    }
}
