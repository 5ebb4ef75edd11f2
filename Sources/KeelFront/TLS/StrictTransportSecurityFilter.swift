import NIOCore
import NIOHTTP1

/// Adds `Strict-Transport-Security` to every final response on a TLS connection (nginx's `add_header … always`),
/// unless the upstream set one itself. Only in the pipeline of TLS connections when `[tls] hsts` is set.
final class StrictTransportSecurityFilter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let value: String

    init(value: String) {
        self.value = value
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data), head.status.code >= 200,
            !head.headers.contains(name: "strict-transport-security")
        else {
            context.write(data, promise: promise)
            return
        }
        head.headers.add(name: "Strict-Transport-Security", value: value)
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}

@available(*, unavailable)
extension StrictTransportSecurityFilter: Sendable {}
