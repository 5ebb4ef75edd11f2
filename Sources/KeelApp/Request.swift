import NIOCore

/// One request as an app sees it: CGI/WSGI-style vars (what nginx's uwsgi_params sends, or what
/// the worker derived from an HTTP request) and the body.
public struct Request: Sendable {
    /// Vars in arrival order: REQUEST_METHOD, REQUEST_URI, PATH_INFO, QUERY_STRING, HTTP_*, …
    public var vars: [(name: String, value: String)]
    /// The whole request body (CONTENT_LENGTH bytes), unless `bodyReader` is set.
    public var body: ByteBuffer
    /// The body still on the connection, for a handler that `streamsRequestBody`: `body` is then empty.
    public var bodyReader: (any BodyReader)?

    public init(vars: [(name: String, value: String)], body: ByteBuffer = ByteBuffer(), bodyReader: (any BodyReader)? = nil) {
        self.vars = vars
        self.body = body
        self.bodyReader = bodyReader
    }

    /// The first value of the var `name`, or nil.
    public subscript(name: String) -> String? {
        for v in vars where v.name == name { return v.value }
        return nil
    }

    public var method: String { self["REQUEST_METHOD"] ?? "GET" }
    public var path: String { self["PATH_INFO"] ?? "/" }
    public var query: String { self["QUERY_STRING"] ?? "" }
    /// The request target as the client sent it (path and query).
    public var uri: String {
        if let uri = self["REQUEST_URI"] { return uri }
        return query.isEmpty ? path : path + "?" + query
    }
    /// "GET /path?x HTTP/1.1": the line logs quote.
    public var requestLine: String { requestLineParts.joined(separator: " ") }

    /// Method, target and protocol, found in one pass over the vars (the scoreboard writes them per request).
    public var requestLineParts: [String] {
        var method: String?
        var uri: String?
        var proto: String?
        for v in vars {
            switch v.name {
            case "REQUEST_METHOD" where method == nil: method = v.value
            case "REQUEST_URI" where uri == nil: uri = v.value
            case "SERVER_PROTOCOL" where proto == nil: proto = v.value
            default: continue
            }
            if method != nil && uri != nil && proto != nil { break }
        }
        return [method ?? "GET", uri ?? self.uri, proto ?? "HTTP/1.1"]
    }

    /// A request header by its HTTP name (`Content-Type`, `X-Id`), looked up among the vars.
    public func header(_ name: String) -> String? {
        let upper = name.uppercased().replacingDashes
        if upper == "CONTENT_TYPE" || upper == "CONTENT_LENGTH" { return self[upper] }
        return self["HTTP_" + upper]
    }

    /// The first value of query parameter `name` (no percent-decoding: built-in apps need digits only).
    public func queryParameter(_ name: String) -> Substring? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first == Substring(name) { return parts.count > 1 ? parts[1] : "" }
        }
        return nil
    }
}

/// A request body read from the connection as the app asks for it, never past CONTENT_LENGTH.
/// Used on the app's thread only, while the request runs.
public protocol BodyReader: AnyObject, Sendable {
    /// Bytes of the body not yet read.
    var remaining: Int { get }
    /// Fills the start of `buffer` with up to `buffer.count` body bytes; 0 at the end of the body.
    /// Throws when the client closed or stalled past the timeout before the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension String {
    fileprivate var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}
