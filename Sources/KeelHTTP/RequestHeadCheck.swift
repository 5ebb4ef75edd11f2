import NIOHTTP1

/// The request-head rules both servers enforce after NIO's parser accepted a head (RFC 9110/9112, as nginx
/// applies them): one table of accepted and refused shapes, one log line per refusal, the connection closed after.
public enum RequestHeadCheck {
    public enum Verdict: Equatable, Sendable {
        case accepted(RequestTarget)
        /// The status to answer with and a one-line reason for the log and the response body.
        case refused(HTTPResponseStatus, reason: String)
    }

    public static func check(_ head: HTTPRequestHead) -> Verdict {
        guard let target = RequestTarget(parsing: head.uri) else {
            return .refused(.badRequest, reason: "invalid request target")
        }
        if head.method == .CONNECT { return .refused(.methodNotAllowed, reason: "CONNECT is not supported") }
        switch target.form {
        case .asterisk where head.method != .OPTIONS:
            return .refused(.badRequest, reason: "\"*\" target with a method other than OPTIONS")
        case .authority:
            return .refused(.badRequest, reason: "authority-form target without CONNECT")
        default:
            break
        }
        var host: String?
        var hostCount = 0
        var transferCodings: [Substring] = []
        for (name, value) in head.headers {
            // Exact names: "Transfer_Encoding" or "Host_" are not the dashed header and never fold into it.
            if name.isASCIICaseInsensitiveEqual("host") {
                hostCount += 1
                host = value
            } else if name.isASCIICaseInsensitiveEqual("transfer-encoding") {
                for coding in value.utf8.split(separator: UInt8(ascii: ",")) {
                    let trimmed = Substring(coding).trimmingOWS
                    if !trimmed.isEmpty { transferCodings.append(trimmed) }
                }
            }
        }
        if hostCount > 1 { return .refused(.badRequest, reason: "more than one Host header") }
        if let host, !HostHeader.isValid(host) { return .refused(.badRequest, reason: "invalid Host header") }
        let isHTTP11 = head.version.major > 1 || head.version.minor >= 1
        if host == nil, target.form != .absolute, isHTTP11 {
            return .refused(.badRequest, reason: "HTTP/1.1 request without a Host header")
        }
        if !transferCodings.isEmpty {
            // RFC 9112 §6.1: chunked framing in an HTTP/1.0 request is faulty; the sender may be a smuggling proxy.
            if !isHTTP11 { return .refused(.badRequest, reason: "HTTP/1.0 request with Transfer-Encoding") }
            guard transferCodings.last!.lowercased() == "chunked" else {
                return .refused(.badRequest, reason: "Transfer-Encoding without chunked as the final coding")
            }
            // Other codings would pass a still-encoded body on as plain: nginx answers 501 too.
            if transferCodings.count > 1 {
                return .refused(
                    .notImplemented,
                    reason: "unsupported Transfer-Encoding \"\(transferCodings.joined(separator: ", "))\"")
            }
        }
        return .accepted(target)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingOWS: Substring {
        var result = self
        while let first = result.utf8.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
            result = result.dropFirst()
        }
        while let last = result.utf8.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            result = result.dropLast()
        }
        return result
    }
}
