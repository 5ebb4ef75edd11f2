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
        /// The keel wire: the server closes this connection and read nothing sent after its last response.
        func upstreamDidSayGoodbye()
        /// The keel wire: the worker answering on this connection is known (first framed response).
        func upstreamDidIdentify(_ load: PoolWorkerLoad)
        /// The connection's timer passed the deadline the listener set.
        func upstreamTimerFired()
    }

    weak var listener: (any Listener)?
    /// The exchanges' send and read timeouts, kept with the connection so each request only moves a deadline.
    private(set) var timer: LoopTimer!
    /// The keel wire: the worker on the other end and its in-flight count, once its first frame arrived.
    private(set) var workerLoad: PoolWorkerLoad?
    /// Where the connection goes (for the worker registry: pids are per host).
    var serverKey = ""
    /// Workers serving in the pool, as its last frame on this connection said.
    private(set) var poolWorkers = 1
    /// The server said goodbye: this connection is never used again.
    private(set) var isClosing = false
    /// Called when the connection closes while idle in a pool.
    var onIdleClose: (() -> Void)?
    private var pendingError: (any Error)?

    func handlerAdded(context: ChannelHandlerContext) {
        timer = LoopTimer(loop: context.eventLoop)
        timer.onFire = { [weak self] in self?.listener?.upstreamTimerFired() }
    }

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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? KeelWireEvent else { return context.fireUserInboundEventTriggered(event) }
        switch event {
        case .responder(let responder):
            poolWorkers = Int(responder.workers)
            if workerLoad == nil || workerLoad!.pid != responder.pid {
                let load = PoolWorkerLoad.registry.load(server: serverKey, responder: responder)
                workerLoad = load
                listener?.upstreamDidIdentify(load)
            }
        case .closing:
            isClosing = true
            workerLoad?.leaving()
        case .goodbye:
            isClosing = true
            workerLoad?.leaving()
            if let listener {
                self.listener = nil
                listener.upstreamDidSayGoodbye()
            }
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pendingError = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.stop()
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
