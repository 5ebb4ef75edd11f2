import NIOHTTP1

/// The CGI vars of an HTTP request, the one builder both servers use: keel's front for the uwsgi wire, keel-pool's
/// `--http-socket` for its apps. So a Python app sees the same environ whichever socket the request came through.
public enum CGIVars {
    public typealias Var = (name: String, value: String)

    /// The vars nginx's `uwsgi_params` sets, in its order, then every request header as HTTP_* in first-seen order:
    /// duplicates joined with ", " (Cookie with "; ", RFC 6265), names with "_" dropped as nginx's
    /// `ignore_invalid_headers` does (`X_Real_IP` must not pass for `X-Real-IP`), Content-Type, Content-Length and
    /// Transfer-Encoding only as CONTENT_TYPE and the de-chunked CONTENT_LENGTH (RFC 3875 §4.1.18).
    /// - bodyLength: the body's length when known (nil for a chunked body still streaming in: CONTENT_LENGTH "").
    /// - scriptName: sent as SCRIPT_NAME when given (keel-pool's own socket; nginx's set has none).
    public static func make(
        head: HTTPRequestHead, target: RequestTarget, bodyLength: Int64?,
        remote: (address: String, port: String), server: (name: String, port: String),
        isTLS: Bool, scriptName: String? = nil
    ) -> [Var] {
        var vars: [Var] = []
        vars.reserveCapacity(16 + head.headers.count)
        let contentLength: String
        if let bodyLength, bodyLength > 0 || head.declaresBody {
            contentLength = String(bodyLength)
        } else {
            contentLength = ""
        }
        vars.append(("QUERY_STRING", String(target.query)))
        vars.append(("REQUEST_METHOD", head.method.rawValue))
        vars.append(("CONTENT_TYPE", head.headers.first(name: "content-type") ?? ""))
        vars.append(("CONTENT_LENGTH", contentLength))
        // The origin form's String is the head's own: no copy on the usual path.
        vars.append(("REQUEST_URI", target.form == .origin ? head.uri : String(target.originForm)))
        vars.append(("PATH_INFO", PercentDecoding.pathInfo(target.path)))
        vars.append(("DOCUMENT_ROOT", ""))
        vars.append(("SERVER_PROTOCOL", protocolName(head.version)))
        vars.append(("REQUEST_SCHEME", isTLS ? "https" : "http"))
        if isTLS { vars.append(("HTTPS", "on")) }
        vars.append(("REMOTE_ADDR", remote.address))
        vars.append(("REMOTE_PORT", remote.port))
        vars.append(("SERVER_PORT", server.port))
        vars.append(("SERVER_NAME", server.name))
        if let scriptName { vars.append(("SCRIPT_NAME", scriptName)) }
        appendHeaderVars(head.headers, absoluteFormHost: target.form == .absolute ? target.authority : nil, to: &vars)
        return vars
    }

    /// HTTP_* vars; an absolute-form target's authority replaces the Host header (RFC 9112 §3.2.2).
    static func appendHeaderVars(_ headers: HTTPHeaders, absoluteFormHost: Substring?, to vars: inout [Var]) {
        let first = vars.count
        for (name, value) in headers {
            guard let key = cgiName(name) else { continue }
            // A linear search: a request has a handful of headers, fewer than a dictionary's hashing costs.
            if let index = vars[first...].firstIndex(where: { $0.name == key }) {
                vars[index].value += (key == "HTTP_COOKIE" ? "; " : ", ") + value
            } else {
                vars.append((key, value))
            }
        }
        guard let absoluteFormHost else { return }
        if let index = vars[first...].firstIndex(where: { $0.name == "HTTP_HOST" }) {
            vars[index].value = String(absoluteFormHost)
        } else {
            vars.append(("HTTP_HOST", String(absoluteFormHost)))
        }
    }

    /// "x-request-id" → "HTTP_X_REQUEST_ID"; nil for a name with "_" and for the three content headers.
    static func cgiName(_ header: String) -> String? {
        let utf8 = header.utf8
        if utf8.contains(UInt8(ascii: "_")) { return nil }
        if utf8.count >= 12,
            header.isASCIICaseInsensitiveEqual("content-type") || header.isASCIICaseInsensitiveEqual("content-length")
                || header.isASCIICaseInsensitiveEqual("transfer-encoding")
        {
            return nil
        }
        return String(unsafeUninitializedCapacity: 5 + utf8.count) { buffer in
            var count = 0
            for byte in "HTTP_".utf8 {
                buffer[count] = byte
                count += 1
            }
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "-"): buffer[count] = UInt8(ascii: "_")
                case UInt8(ascii: "a")...UInt8(ascii: "z"): buffer[count] = byte - 0x20
                default: buffer[count] = byte
                }
                count += 1
            }
            return count
        }
    }

    static func protocolName(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 1): "HTTP/1.1"
        case (1, 0): "HTTP/1.0"
        default: "HTTP/\(version.major).\(version.minor)"
        }
    }
}

extension String {
    /// Equal to an ASCII `lowercase` literal regardless of case, without lowercasing a copy.
    func isASCIICaseInsensitiveEqual(_ lowercase: StaticString) -> Bool {
        let utf8 = self.utf8
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = 0
            for byte in utf8 {
                let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                if folded != expected[index] { return false }
                index += 1
            }
            return true
        }
    }
}
