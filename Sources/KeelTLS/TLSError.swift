internal import COpenSSL

/// What can go wrong on a TLS connection; fired down the pipeline with `errorCaught`.
public enum TLSError: Error, Equatable, CustomStringConvertible {
    /// The handshake failed (garbage, a protocol version or cipher refused, a bad message): OpenSSL's reason.
    case handshakeFailed(String)
    /// A TLS record was bad after the handshake.
    case protocolError(String)
    /// The peer closed the TCP connection without a close_notify (a truncation attack looks the same).
    case uncleanShutdown
    /// No ClientHello completed within the handshake timeout.
    case handshakeTimeout

    public var description: String {
        switch self {
        case .handshakeFailed(let reason): "TLS handshake failed: \(reason)"
        case .protocolError(let reason): "TLS error: \(reason)"
        case .uncleanShutdown: "the peer closed the connection without a TLS close_notify"
        case .handshakeTimeout: "TLS handshake timed out"
        }
    }
}

/// A certificate, key or setting that cannot be used; `certificateIndex` and `part` say which file.
public struct TLSContextError: Error, CustomStringConvertible, Sendable {
    public enum Part: Sendable, Equatable {
        case certificate
        case key
        /// A setting, named as in the configuration (`ciphers`, `cipher_suites`, `min_version`).
        case setting(String)
    }

    public var certificateIndex: Int?
    public var part: Part
    public var message: String

    public var description: String { message }
}

/// OpenSSL's error queue of this thread as one line (and emptied), e.g. "wrong version number".
enum OpenSSLErrors {
    static func drain() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if let reason = ERR_reason_error_string(code) {
                reasons.append(String(cString: reason))
            } else {
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
                reasons.append(String(decoding: bytes, as: UTF8.self))
            }
        }
        return reasons.isEmpty ? "unknown OpenSSL error" : reasons.joined(separator: "; ")
    }
}
