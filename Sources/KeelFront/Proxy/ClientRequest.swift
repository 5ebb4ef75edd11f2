import NIOCore
import NIOHTTP1

/// What the front knows about one client request once its head arrived: the parts every upstream protocol, the
/// router and the access log need, split once.
struct ClientRequest {
    var head: HTTPRequestHead
    /// Path of the target, still percent-encoded (what routing and REQUEST_URI use), no query.
    var rawPath: Substring
    /// The query string without "?", or "".
    var query: Substring
    /// The effective host with port as the client gave it: from an absolute-form target, else the Host header.
    var hostWithPort: String?
    var connection: ConnectionInfo
    var startTime: NIODeadline

    struct ConnectionInfo: Sendable {
        var remoteAddress: String
        var remotePort: Int
        var serverAddress: String
        var serverPort: Int
        var isTLS: Bool
    }

    enum Rejection: Error, Equatable {
        case missingHost
        case invalidHost
        case invalidTarget
    }

    init(head: HTTPRequestHead, connection: ConnectionInfo, startTime: NIODeadline) throws(Rejection) {
        self.head = head
        self.connection = connection
        self.startTime = startTime
        var target = Substring(head.uri)
        var absoluteHost: Substring?
        if !target.hasPrefix("/") {
            // Absolute form ("http://host:port/path"): the target's host wins over the Host header (RFC 9112 §3.2.2).
            guard let schemeEnd = Self.schemeSeparator(in: target) else {
                if head.method == .OPTIONS && target == "*" {
                    target = "*"
                } else {
                    throw .invalidTarget
                }
                self.rawPath = target
                self.query = ""
                self.hostWithPort = head.headers.first(name: "host")
                return
            }
            let afterScheme = target[schemeEnd.upperBound...]
            let pathStart = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
            absoluteHost = afterScheme[..<pathStart]
            target = afterScheme[pathStart...]
            if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        }
        if let question = target.firstIndex(of: "?") {
            rawPath = target[..<question]
            query = target[target.index(after: question)...]
        } else {
            rawPath = target
            query = ""
        }
        let hostValues = head.headers["host"]
        if hostValues.count > 1 { throw .invalidHost }
        let host = absoluteHost.map(String.init) ?? hostValues.first
        if host == nil, head.version.major == 1, head.version.minor >= 1 { throw .missingHost }
        if let host, !Self.isValidHost(host) { throw .invalidHost }
        self.hostWithPort = host
    }

    /// The "://" of an absolute-form target (no Foundation for `range(of:)`).
    private static func schemeSeparator(in target: Substring) -> Range<Substring.Index>? {
        var index = target.startIndex
        while index < target.endIndex {
            let rest = target[index...]
            if rest.hasPrefix("://") { return index..<target.index(index, offsetBy: 3) }
            if rest.first == "/" { return nil }
            index = target.index(after: index)
        }
        return nil
    }

    /// A request that failed validation, kept only to answer and log it.
    static func unchecked(head: HTTPRequestHead, connection: ConnectionInfo) -> ClientRequest {
        ClientRequest(head: head, rawPath: Substring(head.uri), query: "", hostWithPort: nil, connection: connection, startTime: .now())
    }

    private init(head: HTTPRequestHead, rawPath: Substring, query: Substring, hostWithPort: String?, connection: ConnectionInfo, startTime: NIODeadline) {
        self.head = head
        self.rawPath = rawPath
        self.query = query
        self.hostWithPort = hostWithPort
        self.connection = connection
        self.startTime = startTime
    }

    /// nginx's check: no whitespace, slashes or control bytes, not empty, no ".." label.
    static func isValidHost(_ host: String) -> Bool {
        guard !host.isEmpty else { return false }
        // Byte by byte: String.contains("..") would resolve to Foundation's CFString search on the hot path.
        var previousWasDot = false
        for byte in host.utf8 {
            if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") { return false }
            let isDot = byte == UInt8(ascii: ".")
            if isDot && previousWasDot { return false }
            previousWasDot = isDot
        }
        return true
    }

    /// Host without port, lowercased: nginx's `$host`.
    var hostName: String? { hostWithPort.map(Router.normalizedHost) }

    /// The request line as the access log shows it.
    var requestLine: String { "\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)" }
}

extension HTTPRequestHead {
    /// The client announced a body (possibly empty): its length is passed on even when it is 0.
    var declaresBody: Bool { headers.contains(name: "content-length") || headers.contains(name: "transfer-encoding") }
}

/// Percent-decoding for PATH_INFO; nil for malformed escapes or an encoded NUL.
func percentDecoded(_ path: Substring) -> String? {
    guard path.utf8.contains(UInt8(ascii: "%")) else { return String(path) }
    guard let bytes = percentDecodedBytes(path), !bytes.contains(0) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}
