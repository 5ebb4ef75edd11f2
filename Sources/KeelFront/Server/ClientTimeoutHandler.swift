import NIOCore
import NIOHTTP1

/// nginx's client timeouts for one connection, as a state machine fed by what the decoder saw and what was answered:
/// `client_header_timeout` (a head must arrive whole in time → 408, the slowloris defence), `client_body_timeout`
/// (between body reads → 408), `keepalive_timeout` (an idle connection is closed silently) and `send_timeout` (a
/// client that stops reading the response is dropped).
final class ClientTimeoutHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Sent down the pipeline when a body stalls, so the request's owner answers 408 and logs it.
    struct BodyTimeoutEvent {}

    enum Phase: Equatable {
        /// Between requests; `sawBytes` once part of a next head arrived.
        case waitingForHead(sawBytes: Bool)
        case readingBody
        /// Request read, response not finished: the upstream's own timeouts apply.
        case awaitingResponse
    }

    private let limits: FrontConfiguration.Limits
    private let stamp: ResponseStamp
    private var phase = Phase.waitingForHead(sawBytes: false)
    private var requestsStarted = 0
    private var responsesFinished = 0
    /// A response was finished during the current read: the bytes of that read belonged to the answered request.
    private var answeredDuringRead = false
    /// Moved on every request (a clock read), scheduled on the loop rarely: `LoopTimer`.
    private var timer: LoopTimer?
    private var sendTimer: Scheduled<Void>?
    /// The keep-alive timeout found the last response still leaving once already.
    private var responseStillLeaving = false

    init(limits: FrontConfiguration.Limits, stamp: ResponseStamp) {
        self.limits = limits
        self.stamp = stamp
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let timer = LoopTimer(loop: context.eventLoop)
        timer.onFire = { [unowned self] in self.fire(context) }
        self.timer = timer
        if context.channel.isActive { arm(context, limits.clientHeaderTimeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.stop()  // drops onFire, which holds the context
        timer = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, limits.clientHeaderTimeout)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestsStarted += 1
            let hasBody = head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
            phase = hasBody ? .readingBody : .awaitingResponse
            if hasBody { arm(context, limits.clientBodyTimeout) } else { cancel() }
        case .body:
            if phase == .readingBody { arm(context, limits.clientBodyTimeout) }
        case .end:
            if phase == .readingBody {
                phase = .awaitingResponse
                cancel()
            }
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Bytes arrived without completing a head: from now on the head has client_header_timeout to arrive.
        defer { answeredDuringRead = false }
        if phase == .waitingForHead(sawBytes: false), !answeredDuringRead {
            phase = .waitingForHead(sawBytes: true)
            arm(context, limits.clientHeaderTimeout)
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        responsesFinished += 1
        guard responsesFinished >= requestsStarted else {
            context.write(data, promise: promise)
            return
        }
        phase = .waitingForHead(sawBytes: false)
        answeredDuringRead = true
        responseStillLeaving = false
        // keepalive_timeout counts from here; a response still leaving when it passes gets send_timeout more (see
        // fire): no promise per response to learn when its last byte left.
        arm(context, limits.keepaliveTimeout)
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendTimer?.cancel()
            sendTimer = nil
        } else if sendTimer == nil {
            let timeout = limits.sendTimeout
            sendTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                FrontLog.info("client \(context.remoteAddress?.ipAddress ?? "?") did not read the response for \(timeout.prettySeconds) (send_timeout): connection closed")
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.stop()
        sendTimer?.cancel()
        context.fireChannelInactive()
    }

    private func arm(_ context: ChannelHandlerContext, _ delay: TimeAmount) {
        timer?.arm(in: delay)
    }

    private func cancel() {
        timer?.cancel()
    }

    private func fire(_ context: ChannelHandlerContext) {
        switch phase {
        case .waitingForHead(sawBytes: false):
            let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            if buffered > 0 && !responseStillLeaving {
                // The last response has not left yet: its reader gets send_timeout more before the connection ends.
                responseStillLeaving = true
                arm(context, limits.sendTimeout)
                return
            }
            context.close(promise: nil)
        case .waitingForHead(sawBytes: true):
            FrontLog.info("client \(context.remoteAddress?.ipAddress ?? "?") timed out sending the request head (client_header_timeout): answered 408")
            stamp.answerAndClose(.requestTimeout, "Request Timeout\n", context: context)
        case .readingBody where requestsStarted - responsesFinished > 1:
            // A pipelined request's body, held back while an earlier one is answered: judge it once it is current.
            arm(context, limits.clientBodyTimeout)
        case .readingBody:
            FrontLog.info("client \(context.remoteAddress?.ipAddress ?? "?") timed out sending the request body (client_body_timeout): answered 408")
            context.fireUserInboundEventTriggered(BodyTimeoutEvent())
        case .awaitingResponse:
            break
        }
    }
}

@available(*, unavailable)
extension ClientTimeoutHandler: Sendable {}
