import NIOCore
import NIOHTTP1

/// Receives events of an upstream connection and hands them to the exchange using it; the only handler with
/// knowledge of who is listening, so a pooled keep-alive connection can serve one exchange after another.
final class UpstreamResponseRelay: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    /// Events an exchange receives, on the connection's (= the client's) event loop.
    protocol Listener: AnyObject {
        func upstreamDidRead(_ part: HTTPClientResponsePart)
        func upstreamDidCompleteRead()
        func upstreamDidClose(error: (any Error)?)
    }

    weak var listener: (any Listener)?
    /// Called when the connection closes while idle in a pool.
    var onIdleClose: (() -> Void)?
    private var pendingError: (any Error)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let listener else {
            // Bytes on an idle pooled connection: its framing can no longer be trusted (nginx closes it too).
            context.close(promise: nil)
            return
        }
        listener.upstreamDidRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        listener?.upstreamDidCompleteRead()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pendingError = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let listener {
            listener.upstreamDidClose(error: pendingError)
        } else {
            onIdleClose?()
        }
        self.listener = nil
    }
}

@available(*, unavailable)
extension UpstreamResponseRelay: Sendable {}
