import KeelApp
import NIOCore
import NIOHTTP1

/// The CGI vars of an HTTP request, named and filled as nginx's uwsgi_params fills them.
enum HTTPRequestVars {
    static func make(
        head: HTTPRequestHead,
        bodyLength: Int,
        remote: SocketAddress?,
        server: (name: String, port: String)
    ) -> [(name: String, value: String)] {
        let uri = originForm(head.uri)
        let pathEnd = uri.firstIndex(of: "?") ?? uri.endIndex
        let query = pathEnd < uri.endIndex ? String(uri[uri.index(after: pathEnd)...]) : ""
        var vars: [(name: String, value: String)] = [
            ("REQUEST_METHOD", head.method.rawValue),
            ("REQUEST_URI", uri),
            ("PATH_INFO", PercentDecoding.decode(uri[..<pathEnd])),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", "HTTP/\(head.version.major).\(head.version.minor)"),
            ("REQUEST_SCHEME", "http"),
            ("SCRIPT_NAME", ""),
            ("CONTENT_TYPE", head.headers.first(name: "content-type") ?? ""),
            ("CONTENT_LENGTH", bodyLength > 0 ? String(bodyLength) : ""),
            ("REMOTE_ADDR", remote?.ipAddress ?? ""),
            ("REMOTE_PORT", remote?.port.map(String.init) ?? ""),
            ("SERVER_NAME", server.name),
            ("SERVER_PORT", server.port),
        ]
        // Repeated headers are joined as one var: ", " in general, "; " for Cookie (RFC 9110, RFC 6265).
        var seen: [String: Int] = [:]
        for (name, value) in head.headers {
            let lower = name.lowercased()
            if lower == "content-type" || lower == "content-length" || lower == "transfer-encoding" { continue }
            let key = "HTTP_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
            if let index = seen[key] {
                vars[index].value += (lower == "cookie" ? "; " : ", ") + value
            } else {
                seen[key] = vars.count
                vars.append((key, value))
            }
        }
        return vars
    }
}

extension HTTPRequestVars {
    /// `http://host/p?q` (absolute form, RFC 9112 §3.2.2) → `/p?q`, as nginx turns it into its $request_uri.
    static func originForm(_ target: String) -> String {
        for scheme in ["http://", "https://"] where target.lowercased().hasPrefix(scheme) {
            let afterScheme = target.dropFirst(scheme.count)
            guard let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
            let rest = String(afterScheme[slash...])
            return rest.hasPrefix("?") ? "/" + rest : rest
        }
        return target
    }
}
