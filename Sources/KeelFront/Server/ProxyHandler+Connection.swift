import NIOCore
import KeelHTTP
import NIOHTTP1

/// ProxyHandler's connection half: the client timeouts (`ClientTimeouts`), pipelined requests held until their turn
/// (`PipelinedRequests`) and the graceful stop, carried out from what those state machines decide. They were two
/// handlers in front of this one; as state here each request skips two pipeline hops (about 4 µs, issue 14).
extension ProxyHandler {
    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // A stream's head came with the stream: only a request body arms a timer, made then (saves a scheduled task
        // and a timer per GET).
        guard !isHTTP2Stream else { return }
        makeTimer(context: context)
        if context.channel.isActive { apply(timeouts.connected()) }
    }

    @discardableResult
    private func makeTimer(context: ChannelHandlerContext) -> LoopTimer {
        let timer = LoopTimer(loop: context.eventLoop)
        timer.onFire = { [unowned self] in self.timerFired(context: context) }
        self.timer = timer
        return timer
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()  // drops onFire, which holds the context
        timer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if !isHTTP2Stream { apply(timeouts.connected()) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // The timeouts see every part as it arrives, pipelined ones included, before the queue holds them back.
        switch part {
        case .head(let head):
            let hasBody = head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
            apply(timeouts.receivedHead(hasBody: hasBody))
        case .body: apply(timeouts.receivedBody())
        case .end: apply(timeouts.receivedEnd())
        }
        guard pipeline.arrived(part) else { return }
        handle(part, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        apply(timeouts.readComplete())
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if pipeline.allowsRead() { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A stream's connection quiesces with GOAWAY (HTTP2ConnectionGuard); the stream itself just finishes.
        guard event is ChannelShouldQuiesceEvent, !isHTTP2Stream else { return context.fireUserInboundEventTriggered(event) }
        if pipeline.quiesce() == .closeNow {
            state = .closed
            context.close(promise: nil)
        }
    }

    /// A response's end is about to be written: the timeouts and the queue learn it. False when a graceful stop makes
    /// it the connection's last.
    func responseEnding() -> Bool {
        // A stream ends with its response: no keep-alive wait to time.
        let action = timeouts.responseEnded()
        if !isHTTP2Stream { apply(action) } else { timer?.cancel() }
        pipeline.responseEnded()
        return !pipeline.quiescing
    }

    /// After a kept-alive response: the requests queued behind it go on (one may be answered, and the next handed
    /// on, within this loop), then a read withheld while the queue was full is passed to the socket.
    func deliverQueued(context: ChannelHandlerContext) {
        guard !deliveringQueued else { return }
        deliveringQueued = true
        defer { deliveringQueued = false }
        while let part = pipeline.nextDeliverable() { handle(part, context: context) }
        if pipeline.owesRead() { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendTimer?.cancel()
            sendTimer = nil
            if case .responding(let inFlight) = state { inFlight.exchange?.clientBecameWritable() }
        } else if sendTimer == nil {
            let timeout = timeouts.sendTimeout
            sendTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                FrontLog.info("client \(context.channel.remoteAddress?.ipAddress ?? "?") did not read the response for \(timeout.prettySeconds) (send_timeout): connection closed")
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func stopTimers() {
        timer?.stop()
        sendTimer?.cancel()
        sendTimer = nil
    }

    private func apply(_ action: ClientTimeouts.TimerAction) {
        switch action {
        case .arm(let delay):
            if let timer { timer.arm(in: delay) } else if let context { makeTimer(context: context).arm(in: delay) }
        case .cancel: timer?.cancel()
        case .none: break
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        // A stream channel traps on that option; its send side is NIO's flow control, not this timer.
        let unsent = isHTTP2Stream ? 0 : (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        switch timeouts.expired(unsentBytes: unsent) {
        case .closeSilently:
            state = .closed
            context.close(promise: nil)
        case .headTimedOut:
            FrontLog.info("client \(connectionInfo(context).remoteAddress) timed out sending the request head (client_header_timeout): answered 408")
            state = .closed
            stamp.answerAndClose(.requestTimeout, "Request Timeout\n", context: context)
        case .bodyTimedOut:
            FrontLog.info("client \(connectionInfo(context).remoteAddress) timed out sending the request body (client_body_timeout): answered 408")
            bodyTimedOut(context: context)
        case .rearm(let delay):
            timer?.arm(in: delay)
        case .none:
            break
        }
    }
}
