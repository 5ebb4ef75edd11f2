import NIOCore
import NIOHTTP1

/// The headers keel puts on every final response, whoever produced it (a route, an upstream, a 400 from the parser,
/// a 408 from a timeout): `Date` (RFC 9110 §6.6.1 asks it of an origin with a clock), `Server` (nginx's
/// `server_tokens`), and on TLS listeners with `[tls] hsts` a `Strict-Transport-Security` (nginx's `add_header …
/// always`). A value the upstream set itself is kept, as nginx's uwsgi module passes them. Sits next to the encoder.
final class ResponseHeaderStamp: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let clock: HTTPDateClock
    private let server: String
    private let hsts: String?

    init(clock: HTTPDateClock, server: String, hsts: String?) {
        self.clock = clock
        self.server = server
        self.hsts = hsts
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data), head.status.code >= 200 else {
            context.write(data, promise: promise)
            return
        }
        Self.stamp(&head.headers, date: clock.now, server: server, hsts: hsts)
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }

    static func stamp(_ headers: inout HTTPHeaders, date: String, server: String, hsts: String?) {
        if !headers.contains(name: "date") { headers.add(name: "Date", value: date) }
        if !headers.contains(name: "server") { headers.add(name: "Server", value: server) }
        if let hsts, !headers.contains(name: "strict-transport-security") {
            headers.add(name: "Strict-Transport-Security", value: hsts)
        }
    }

    /// nginx's `server_tokens`: "keel/0.3.0", or "keel" alone when they are off.
    static func serverValue(tokens: Bool) -> String { tokens ? "keel/\(KeelVersion.current)" : "keel" }
}

@available(*, unavailable)
extension ResponseHeaderStamp: Sendable {}

/// The version `Server` and `--version` report.
public enum KeelVersion {
    public static let current = "0.3.0"
}
