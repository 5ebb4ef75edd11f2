import KeelHTTP
import NIOHTTP1

/// The HTTP protocol's part of an exchange (nginx's proxy module): the request head sent upstream and the response
/// headers passed back, both without hop-by-hop headers, which belong to one connection only (RFC 9110 §7.6.1).
enum HTTPUpstreamRequest {
    static let hopByHopHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// HTTP/1.1 with keep-alive; the body (de-chunked) as Content-Length; Host as the client gave it (`$host` with
    /// port); X-Real-IP, X-Forwarded-For (appended to), X-Forwarded-Proto as Debian's `proxy_params` sets them.
    static func head(for request: ClientRequest, bodyLength: Int64) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        var forwardedFor: String?
        // HTTP/2 clients split Cookie into one field per pair; an HTTP/1.1 upstream gets them joined (RFC 9113 §8.2.3).
        var cookie: String?
        for (name, value) in request.head.headers {
            let lower = name.lowercased()
            if hopByHopHeaders.contains(lower) || lower == "content-length" || lower == "host" { continue }
            // "X_Real_IP" would become HTTP_X_REAL_IP in a CGI-style backend: dropped, as nginx's ignore_invalid_headers does.
            if lower.utf8.contains(UInt8(ascii: "_")) { continue }
            if let listed = connectionListedHeaders(request.head.headers), listed.contains(lower) { continue }
            switch lower {
            case "x-forwarded-for": forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
            case "x-real-ip", "x-forwarded-proto": continue
            case "cookie": cookie = cookie.map { "\($0); \(value)" } ?? value
            default: headers.add(name: name, value: value)
            }
        }
        if let cookie { headers.add(name: "Cookie", value: cookie) }
        if let host = request.hostWithPort { headers.add(name: "Host", value: host) }
        let remote = request.connection.remoteAddress
        headers.add(name: "X-Real-IP", value: remote)
        headers.add(name: "X-Forwarded-For", value: forwardedFor.map { "\($0), \(remote)" } ?? remote)
        headers.add(name: "X-Forwarded-Proto", value: request.connection.isTLS ? "https" : "http")
        if bodyLength > 0 || request.head.declaresBody {
            headers.add(name: "Content-Length", value: String(bodyLength))
        }
        let uri = request.target.form == .origin ? request.head.uri : String(request.target.originForm)
        return HTTPRequestHead(version: .http1_1, method: request.head.method, uri: uri, headers: headers)
    }

    /// Upstream response headers minus hop-by-hop ones; Content-Length stays (so the client gets it), chunking is
    /// redone by keel's own encoder for HTTP/1.1 clients.
    static func responseHeaders(from upstream: HTTPHeaders) -> HTTPHeaders {
        let listed = connectionListedHeaders(upstream) ?? []
        var headers = HTTPHeaders()
        for (name, value) in upstream {
            let lower = name.lowercased()
            if hopByHopHeaders.contains(lower) || listed.contains(lower) { continue }
            headers.add(name: name, value: value)
        }
        return headers
    }

    /// Headers named in Connection are hop-by-hop too.
    private static func connectionListedHeaders(_ headers: HTTPHeaders) -> Set<String>? {
        let values = headers[canonicalForm: "connection"]
        if values.isEmpty { return nil }
        return Set(values.map { $0.lowercased() }.filter { $0 != "close" && $0 != "keep-alive" })
    }
}
