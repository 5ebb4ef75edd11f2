import NIOCore
import NIOHTTP2

/// One HTTP/2 connection's keel-side rules, behind NIOHTTP2Handler (which frames, limits and answers attacks with
/// GOAWAY itself): each connection error gets one log line naming the attack and the connection is closed (NIO
/// writes the GOAWAY but leaves the socket open); streams are counted, and `http2_max_requests` or a HUP starts
/// the graceful GOAWAY that NIOHTTP2ServerConnectionManagementHandler (next in the pipeline) carries out.
/// That handler closes only once the client acks its PING, so the guard holds the hard deadlines: a connection
/// without streams closes after the idle timeout plus the grace, and one told GOAWAY after the grace.
final class HTTP2ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    private let loopLocal: LoopLocalState
    private let counters: HTTP2Counters
    private let goAwayWatch: HTTP2GoAwayWatch
    private let maxRequests: Int
    private let idleTimeout: TimeAmount
    private let graceTime: TimeAmount
    private var streams = 0
    private var openStreams = 0
    private var context: ChannelHandlerContext?
    private var deadline: LoopTimer?
    private var registered = false
    private var goingAway = false
    private var cutOff = false

    init(
        loopLocal: LoopLocalState, counters: HTTP2Counters, goAwayWatch: HTTP2GoAwayWatch, maxRequests: Int,
        idleTimeout: TimeAmount, graceTime: TimeAmount
    ) {
        self.loopLocal = loopLocal
        self.counters = counters
        self.goAwayWatch = goAwayWatch
        self.maxRequests = maxRequests
        self.idleTimeout = idleTimeout
        self.graceTime = graceTime
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let deadline = LoopTimer(loop: context.eventLoop)
        deadline.onFire = { [unowned self] in self.deadlinePassed() }
        self.deadline = deadline
        // After ALPN the channel is already active: no channelActive will come.
        if context.channel.isActive { opened() }
    }

    func channelActive(context: ChannelHandlerContext) {
        opened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed()
        deadline?.stop()  // drops onFire, which holds self
        deadline = nil
        self.context = nil
    }

    private func opened() {
        guard !registered else { return }
        registered = true
        counters.connectionsOpen.add(1, ordering: .relaxed)
        loopLocal.registerHTTP2Connection(self)
        deadline?.arm(in: idleTimeout + graceTime)
    }

    private func closed() {
        deadline?.stop()
        guard registered else { return }
        registered = false
        counters.connectionsOpen.subtract(1, ordering: .relaxed)
        loopLocal.unregisterHTTP2Connection(self)
    }

    /// A stream the client opened (NIOHTTP2StreamDelegate, on this loop).
    func streamCreated() {
        streams += 1
        openStreams += 1
        // Busy: no idle deadline (a GOAWAY's grace deadline stays).
        if !goingAway { deadline?.cancel() }
        counters.streamsOpened.add(1, ordering: .relaxed)
        loopLocal.runtime.metrics?.front.http2Streams.increment()
        if streams == maxRequests, let context {
            FrontLog.debug("client \(Self.client(context)) reached http2_max_requests (\(maxRequests)): GOAWAY, the connection closes once its streams finish")
            goAway(context: context)
        }
    }

    func streamClosed() {
        openStreams -= 1
        // Moving a deadline later is a clock read (LoopTimer), not a scheduled task per request.
        if openStreams == 0 && !goingAway { deadline?.arm(in: idleTimeout + graceTime) }
    }

    /// HUP and `http2_max_requests`: GOAWAY, let open streams finish, then close (the management handler's job).
    func goAwayGracefully() {
        guard let context else { return }
        goAway(context: context)
    }

    private func goAway(context: ChannelHandlerContext) {
        guard startGrace() else { return }
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    /// TERM reaches the connection as this event; it passes on to the management handler.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { startGrace() }
        context.fireUserInboundEventTriggered(event)
    }

    /// The connection is going away: whatever the client does, it is closed after the grace.
    @discardableResult
    private func startGrace() -> Bool {
        guard !goingAway else { return false }
        goingAway = true
        deadline?.cancel()
        deadline?.arm(in: graceTime)
        return true
    }

    private func deadlinePassed() {
        guard let context else { return }
        if goingAway {
            FrontLog.info("client \(Self.client(context)) did not finish its HTTP/2 streams within graceful_timeout (\(graceTime.prettySeconds)) after GOAWAY: connection closed")
        } else {
            FrontLog.debug("HTTP/2 connection from \(Self.client(context)) idle and silent past keepalive_timeout and the grace: closed")
        }
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO sent GOAWAY for a connection error, RST_STREAM for a stream error; both arrive here as the bare error.
        let goAwayCode = goAwayWatch.takeGoAway()
        let named = Self.cutOff(for: error)
        guard named != nil || (goAwayCode != nil && goAwayCode != .noError) else {
            // A stream error (RST_STREAM already sent) or the socket's own: the connection goes on or ends by itself.
            FrontLog.debug("HTTP/2 connection from \(Self.client(context)): \(error)")
            context.fireErrorCaught(error)
            return
        }
        let (reason, what) = named ?? (.protocolError, "broke the HTTP/2 protocol (\(error))")
        guard !cutOff else { return }
        cutOff = true
        counters.countCutOff(reason)
        loopLocal.runtime.metrics?.front.http2CutOff(reason).increment()
        let code = goAwayCode?.rfcName ?? Self.code(for: reason)
        FrontLog.warning("client \(Self.client(context)) \(what): GOAWAY(\(code)), connection closed")
        // NIO queued the GOAWAY (flushed at the read's end): flush it now and close on the next tick.
        context.flush()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.execute { loopBound.value.close(promise: nil) }
    }

    static func client(_ context: ChannelHandlerContext) -> String {
        context.channel.remoteAddress?.ipAddress ?? "?"
    }

    /// The connection errors NIOHTTP2Handler answered with GOAWAY, by what the client did; nil for stream errors.
    static func cutOff(for error: any Error) -> (HTTP2CutOff, String)? {
        switch error {
        case is NIOHTTP2Errors.ExcessiveRSTFrames:
            return (.rapidReset, "reset streams faster than they complete (rapid reset, CVE-2023-44487)")
        case is NIOHTTP2Errors.ExcessiveContinuationFrames:
            return (.continuationFlood, "sent a header block in too many CONTINUATION frames (CONTINUATION flood)")
        case is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock:
            return (.headerBlockTooLarge, "sent a header block over max_header_size")
        case is NIOHTTP2Errors.ExcessiveControlFrames:
            return (.controlFrameFlood, "sent SETTINGS/PING/PRIORITY frames faster than allowed (settings or ping flood)")
        case is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering:
            return (.unreadReplies, "does not read keel's replies to its control frames (PING/SETTINGS flood)")
        case is NIOHTTP2Errors.ExcessiveEmptyDataFrames:
            return (.emptyFrameFlood, "sent a flood of empty DATA frames")
        case is NIOHTTP2Errors.ExcessiveStreamErrors, is NIOHTTP2Errors.ExcessiveNumberOfGlitches:
            return (.streamErrors, "caused too many stream errors (refused or malformed streams)")
        case is NIOHTTP2Errors.UnableToParseFrame:
            return (.compressionError, "sent a frame or HPACK block that cannot be decoded (or a header list over max_header_size)")
        case is NIOHTTP2Errors.BadClientMagic:
            return (.protocolError, "did not start with the HTTP/2 connection preface")
        default:
            return nil
        }
    }

    /// The GOAWAY code NIOHTTP2Handler sends for each reason (for the log line).
    static func code(for reason: HTTP2CutOff) -> String {
        switch reason {
        case .headerBlockTooLarge, .protocolError: "PROTOCOL_ERROR"
        case .compressionError: "COMPRESSION_ERROR or PROTOCOL_ERROR"
        default: "ENHANCE_YOUR_CALM"
        }
    }
}

@available(*, unavailable)
extension HTTP2ConnectionGuard: Sendable {}

/// Tells the guard (stream count) and the management handler (idle timer, graceful close) about every stream.
struct HTTP2StreamEvents: NIOHTTP2StreamDelegate {
    let guardHandler: NIOLoopBound<HTTP2ConnectionGuard>
    let management: NIOHTTP2ServerConnectionManagementHandler.HTTP2StreamDelegate

    func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        guardHandler.value.streamCreated()
        management.streamCreated(id, channel: channel)
    }

    func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        guardHandler.value.streamClosed()
        management.streamClosed(id, channel: channel)
    }
}
