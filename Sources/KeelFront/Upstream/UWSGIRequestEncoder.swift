import NIOCore
import NIOHTTP1

/// The uwsgi protocol's only job in an exchange (nginx's `create_request` callback): the request head goes out as
/// the uwsgi packet built for this one connection, body bytes pass as they are. The HTTPClientRequestPart head still
/// flows past the response decoder first, so it knows a HEAD request's answer has no body.
final class UWSGIRequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    private let packetHead: ByteBuffer

    init(packetHead: ByteBuffer) {
        self.packetHead = packetHead
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            context.write(wrapOutboundOut(.byteBuffer(packetHead)), promise: promise)
        case .body(let body):
            context.write(wrapOutboundOut(body), promise: promise)
        case .end:
            // Nothing on the wire: the body's length was announced in CONTENT_LENGTH.
            context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }
}

@available(*, unavailable)
extension UWSGIRequestEncoder: Sendable {}
