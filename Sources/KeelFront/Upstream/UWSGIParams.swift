import NIOHTTP1
import UWSGI

/// The vars keel sends on the uwsgi wire: exactly what nginx's `uwsgi_params` file sends, then every request header
/// as HTTP_* (duplicates joined with ", ", Cookie with "; "), as `uwsgi_pass` does.
enum UWSGIParams {
    static func vars(for request: ClientRequest, serverName: String, contentLength: Int64) -> [UWSGIVar] {
        let head = request.head
        let connection = request.connection
        var vars: [UWSGIVar] = [
            ("QUERY_STRING", String(request.query)),
            ("REQUEST_METHOD", head.method.rawValue),
            ("CONTENT_TYPE", head.headers.first(name: "content-type") ?? ""),
            ("CONTENT_LENGTH", contentLength > 0 || head.declaresBody ? String(contentLength) : ""),
            ("REQUEST_URI", head.uri),
            ("PATH_INFO", percentDecoded(request.rawPath) ?? String(request.rawPath)),
            ("DOCUMENT_ROOT", ""),
            ("SERVER_PROTOCOL", "HTTP/\(head.version.major).\(head.version.minor)"),
            ("REQUEST_SCHEME", connection.isTLS ? "https" : "http"),
        ]
        if connection.isTLS { vars.append(("HTTPS", "on")) }
        vars += [
            ("REMOTE_ADDR", connection.remoteAddress),
            ("REMOTE_PORT", String(connection.remotePort)),
            ("SERVER_PORT", String(connection.serverPort)),
            ("SERVER_NAME", serverName),
        ]
        vars += headerVars(head.headers, effectiveHost: request.hostWithPort)
        return vars
    }

    /// HTTP_* vars in first-seen order. Headers whose names have "_" are skipped, as nginx's
    /// `ignore_invalid_headers` does: "X_Forwarded" must not be able to spoof "X-Forwarded". Content-Length is
    /// left out: the de-chunked CONTENT_LENGTH above is the only length the backend should see.
    static func headerVars(_ headers: HTTPHeaders, effectiveHost: String?) -> [UWSGIVar] {
        var order: [String] = []
        var values: [String: String] = [:]
        for (name, value) in headers {
            if name.utf8.contains(UInt8(ascii: "_")) { continue }
            let key = cgiName(name)
            if key == "HTTP_CONTENT_LENGTH" || key == "HTTP_TRANSFER_ENCODING" { continue }
            if let existing = values[key] {
                values[key] = existing + (key == "HTTP_COOKIE" ? "; " : ", ") + value
            } else {
                order.append(key)
                values[key] = value
            }
        }
        if let effectiveHost {
            // An absolute-form target's host replaces a differing Host header (Debian's uwsgi_params note on $host).
            if values["HTTP_HOST"] == nil { order.append("HTTP_HOST") }
            values["HTTP_HOST"] = effectiveHost
        }
        return order.map { ($0, values[$0]!) }
    }

    static func cgiName(_ header: String) -> String {
        var name = "HTTP_"
        name.unicodeScalars.reserveCapacity(5 + header.utf8.count)
        for scalar in header.unicodeScalars {
            switch scalar {
            case "-": name.unicodeScalars.append("_")
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            default: name.unicodeScalars.append(scalar)
            }
        }
        return name
    }
}
