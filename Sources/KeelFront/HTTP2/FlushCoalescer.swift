import NIOCore

/// Below NIOHTTP2Handler: the flushes of every stream in one event-loop tick become one flush at its end, so the
/// responses of streams finishing together leave in one write (one TLS record when small) instead of a syscall
/// each, as nginx sends its queued frames once per event cycle. A close flushes first: NIO's connection manager
/// closes on the tick after a stream's last frame and must not overtake the flush that carries it.
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny

    private var pending = false

    func flush(context: ChannelHandlerContext) {
        guard !pending else { return }
        pending = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = loopBound.value
            coalescer.flushPending(context: context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushPending(context: context)
        context.close(mode: mode, promise: promise)
    }

    private func flushPending(context: ChannelHandlerContext) {
        guard pending else { return }
        pending = false
        context.flush()
    }
}

@available(*, unavailable)
extension FlushCoalescer: Sendable {}
