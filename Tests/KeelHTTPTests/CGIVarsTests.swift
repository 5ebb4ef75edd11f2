import NIOHTTP1
import Testing

@testable import KeelHTTP

/// The vars both servers build, as a table of request → expected vars.
@Suite struct CGIVarsTests {
    static func vars(
        _ method: HTTPMethod = .GET, _ uri: String, version: HTTPVersion = .http1_1, _ headers: [(String, String)],
        bodyLength: Int64? = 0, isTLS: Bool = false, scriptName: String? = nil
    ) -> [String] {
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
        return CGIVars.make(
            head: head, target: RequestTarget(parsing: uri)!, bodyLength: bodyLength, remote: ("192.0.2.7", "51000"),
            server: ("example.com", "8080"), isTLS: isTLS, scriptName: scriptName
        ).map { "\($0.name)=\($0.value)" }
    }

    @Test func nginxUwsgiParamsInTheirOrderThenHeaders() {
        #expect(
            Self.vars(.GET, "/a%20b/c?x=1", [("Host", "example.com:8080"), ("User-Agent", "curl/8.5.0")]) == [
                "QUERY_STRING=x=1", "REQUEST_METHOD=GET", "CONTENT_TYPE=", "CONTENT_LENGTH=",
                "REQUEST_URI=/a%20b/c?x=1", "PATH_INFO=/a b/c", "DOCUMENT_ROOT=", "SERVER_PROTOCOL=HTTP/1.1",
                "REQUEST_SCHEME=http", "REMOTE_ADDR=192.0.2.7", "REMOTE_PORT=51000", "SERVER_PORT=8080",
                "SERVER_NAME=example.com", "HTTP_HOST=example.com:8080", "HTTP_USER_AGENT=curl/8.5.0",
            ])
    }

    @Test func tlsAndScriptNameAreTheCallersParameters() {
        let vars = Self.vars(.GET, "/", [("Host", "h")], isTLS: true, scriptName: "")
        #expect(vars.contains("REQUEST_SCHEME=https") && vars.contains("HTTPS=on") && vars.contains("SCRIPT_NAME="))
        let plain = Self.vars(.GET, "/", [("Host", "h")])
        #expect(!plain.contains { $0.hasPrefix("HTTPS=") || $0.hasPrefix("SCRIPT_NAME=") })
    }

    /// Each row: request headers → the HTTP_* vars (and CONTENT_*) that must come out, in order.
    @Test(arguments: [
        ("duplicates joined with \", \" at the first position",
         [("Accept", "text/html"), ("X-Forwarded-For", "192.0.2.1"), ("accept", "application/json"),
          ("X-Forwarded-For", "192.0.2.2")],
         ["HTTP_ACCEPT=text/html, application/json", "HTTP_X_FORWARDED_FOR=192.0.2.1, 192.0.2.2"]),
        ("Cookie joined with \"; \"", [("Cookie", "a=1"), ("cookie", "b=2"), ("COOKIE", "c=3")],
         ["HTTP_COOKIE=a=1; b=2; c=3"]),
        ("an underscore name never folds into its dashed twin",
         [("X_Real_IP", "6.6.6.6"), ("X-Real-IP", "192.0.2.1"), ("x_real_ip", "6.6.6.6")],
         ["HTTP_X_REAL_IP=192.0.2.1"]),
        ("Transfer_Encoding is dropped, not taken for Transfer-Encoding", [("Transfer_Encoding", "chunked")], []),
        ("content headers only as CONTENT_*",
         [("Content-Type", "application/json"), ("Content-Length", "17"), ("Transfer-Encoding", "chunked"),
          ("X-Id", "7")],
         ["CONTENT_TYPE=application/json", "HTTP_X_ID=7"]),
        ("names upper-cased with dashes as underscores",
         [("x-request-id", "1"), ("DNT", "1"), ("X-Multi-Part-Name", "v")],
         ["HTTP_X_REQUEST_ID=1", "HTTP_DNT=1", "HTTP_X_MULTI_PART_NAME=v"]),
    ] as [(String, [(String, String)], [String])])
    func headerVars(rule: String, headers: [(String, String)], expected: [String]) {
        let vars = Self.vars(.POST, "/", headers).filter {
            $0.hasPrefix("HTTP_") || ($0.hasPrefix("CONTENT_TYPE=") && $0 != "CONTENT_TYPE=")
        }
        #expect(vars == expected, "\(rule)")
    }

    /// CONTENT_LENGTH is the body received (a chunked body has no header), "" when there is none or it still streams.
    @Test(arguments: [
        ([("Content-Length", "5")], Int64(5), "5"),
        ([("Transfer-Encoding", "chunked")], 12, "12"),
        ([("Transfer-Encoding", "chunked")], nil, ""),
        ([], 0, ""),
        ([("Content-Length", "0")], 0, "0"),
    ] as [([(String, String)], Int64?, String)])
    func contentLength(headers: [(String, String)], bodyLength: Int64?, expected: String) {
        #expect(Self.vars(.POST, "/", headers, bodyLength: bodyLength).contains("CONTENT_LENGTH=\(expected)"))
    }

    /// An absolute-form target: REQUEST_URI in origin form as nginx's $request_uri, its host as HTTP_HOST.
    @Test(arguments: [
        ("http://real.test:81/p%61th?x", [("Host", "other")], "/p%61th?x", "/path", "x", "real.test:81"),
        ("http://real.test", [], "/", "/", "", "real.test"),
        ("HTTP://real.test?q", [("Host", "other")], "/?q", "/", "q", "real.test"),
    ] as [(String, [(String, String)], String, String, String, String)])
    func absoluteForm(
        uri: String, headers: [(String, String)], requestURI: String, path: String, query: String, host: String
    ) {
        let vars = Self.vars(.GET, uri, headers)
        #expect(vars.contains("REQUEST_URI=\(requestURI)"))
        #expect(vars.contains("PATH_INFO=\(path)"))
        #expect(vars.contains("QUERY_STRING=\(query)"))
        #expect(vars.filter { $0.hasPrefix("HTTP_HOST=") } == ["HTTP_HOST=\(host)"])
    }

    @Test(arguments: [
        (HTTPVersion.http1_0, "HTTP/1.0"), (.http1_1, "HTTP/1.1"), (HTTPVersion(major: 2, minor: 0), "HTTP/2.0"),
    ])
    func serverProtocol(version: HTTPVersion, expected: String) {
        #expect(Self.vars(.GET, "/", version: version, []).contains("SERVER_PROTOCOL=\(expected)"))
    }
}
