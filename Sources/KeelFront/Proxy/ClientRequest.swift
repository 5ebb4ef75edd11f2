import KeelHTTP
import NIOCore
import NIOHTTP1

/// What the front knows about one client request once its head arrived: the parts every upstream protocol, the
/// router and the access log need, split once.
struct ClientRequest {
    var head: HTTPRequestHead
    /// The target split by KeelHTTP (the same parser keel-pool's HTTP socket uses).
    var target: RequestTarget
    /// Path of the target, still percent-encoded (what routing uses), no query.
    var rawPath: Substring { target.path }
    /// The query string without "?", or "".
    var query: Substring { target.query }
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

    /// A head KeelHTTP's `RequestHeadCheck` refused: the status to answer and the reason to log.
    struct Rejection: Error, Equatable {
        var status: HTTPResponseStatus
        var reason: String
    }

    /// A head `RequestHeadCheck` accepted, with the target it parsed.
    init(head: HTTPRequestHead, target: RequestTarget, connection: ConnectionInfo, startTime: NIODeadline) {
        self.head = head
        self.target = target
        self.connection = connection
        self.startTime = startTime
        // The absolute form's host wins over the Host header (RFC 9112 §3.2.2).
        self.hostWithPort = target.authority.map(String.init) ?? head.headers.first(name: "host")
    }

    /// Checks the head first; throws what it refused.
    init(head: HTTPRequestHead, connection: ConnectionInfo, startTime: NIODeadline) throws(Rejection) {
        switch RequestHeadCheck.check(head) {
        case .accepted(let target): self.init(head: head, target: target, connection: connection, startTime: startTime)
        case .refused(let status, let reason): throw Rejection(status: status, reason: reason)
        }
    }

    /// A request that failed validation, kept only to answer and log it (its target is never looked at).
    static func unchecked(head: HTTPRequestHead, connection: ConnectionInfo) -> ClientRequest {
        var request = ClientRequest(head: head, target: unparsedTarget, connection: connection, startTime: .now())
        request.hostWithPort = nil
        return request
    }

    private static let unparsedTarget = RequestTarget(parsing: "/")!

    /// Host without port, lowercased: nginx's `$host`.
    var hostName: String? { hostWithPort.map(Router.normalizedHost) }

    /// The request line as the access log shows it.
    var requestLine: String { "\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)" }
}
