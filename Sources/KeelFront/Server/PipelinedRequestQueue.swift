import NIOCore
import NIOHTTP1

/// Passes the proxy one request at a time, holding pipelined ones until the response before them has ended, as
/// NIO's `HTTPServerPipelineHandler` does, without its cost on the usual path: that handler withholds `read()` while
/// any response is pending, so a keep-alive client waiting for an upstream's answer cost two `epoll_ctl` calls per
/// request (measured: about 16 µs of keel's CPU per proxied request). Here reads are held back only while pipelined
/// requests queue up beyond a bound. Also the graceful stop (`ChannelShouldQuiesceEvent`): an idle connection closes
/// at once, a busy one right after its response.
final class PipelinedRequestQueue: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Pipelined requests queued before reads pause (a client may send this many ahead without waiting).
    static let maxQueuedRequests = 4

    /// The current request's head was passed on and its end not yet.
    private var receiving = false
    /// A request was passed on and its response has not ended.
    private var responding = false
    /// Room for one part at first: most connections never pipeline, and the default 16 slots cost every idle
    /// connection about 1 KiB (bench/idle.sh); it grows when a client does pipeline.
    private var queued = CircularBuffer<HTTPServerRequestPart>(initialCapacity: 1)
    private var queuedHeads = 0
    private var readHeld = false
    private var quiescing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard queued.isEmpty, passesNow(part) else {
            enqueue(part)
            return
        }
        pass(part, context: context)
    }

    func read(context: ChannelHandlerContext) {
        if queuedHeads >= Self.maxQueuedRequests {
            readHeld = true
            return
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        responding = false
        if quiescing {
            // A graceful stop: this response is the connection's last.
            queued.removeAll()
            queuedHeads = 0
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.write(data, promise: written)
            context.flush()
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.write(data, promise: promise)
        deliverQueued(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        if !responding && !receiving && queued.isEmpty {
            context.close(promise: nil)
        } else {
            quiescing = true
        }
    }

    /// Whether `part` belongs to what the proxy may see now (with nothing queued).
    private func passesNow(_ part: HTTPServerRequestPart) -> Bool {
        switch part {
        case .head: !responding
        case .body, .end: receiving
        }
    }

    private func pass(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head:
            responding = true
            receiving = true
        case .body:
            break
        case .end:
            receiving = false
        }
        context.fireChannelRead(wrapInboundOut(part))
    }

    private func enqueue(_ part: HTTPServerRequestPart) {
        if case .head = part { queuedHeads += 1 }
        queued.append(part)
    }

    /// After a response ended: the next queued request goes on (it may be answered, and the one after it delivered,
    /// before this returns), then reads resume if they were held.
    private func deliverQueued(context: ChannelHandlerContext) {
        while let part = queued.first, passesNow(part) {
            queued.removeFirst()
            if case .head = part { queuedHeads -= 1 }
            pass(part, context: context)
        }
        if readHeld && queuedHeads < Self.maxQueuedRequests {
            readHeld = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension PipelinedRequestQueue: Sendable {}
