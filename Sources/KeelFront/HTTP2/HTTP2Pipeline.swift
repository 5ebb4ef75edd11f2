import NIOCore
import NIOHTTP1
import NIOHTTP2

/// The HTTP/2 connection pipeline: NIOHTTP2Handler (framing, HPACK, flow control and its DoS limits, one child
/// channel per stream) → HTTP2ConnectionGuard (keel's logs, counts, GOAWAY triggers and hard deadlines) → NIO's
/// connection management handler (idle timeout, graceful GOAWAY); below NIOHTTP2Handler, the GOAWAY watch and the
/// flush coalescer. Each stream runs the HTTP/1 codec's parts through the same
/// ProxyHandler as an HTTP/1.1 request, so routing, static files, gzip, upstreams and the access log are shared.
enum HTTP2Pipeline {
    /// nginx's limits as SETTINGS and NIO's flow-control targets.
    static func configuration(_ limits: FrontConfiguration.Limits) -> NIOHTTP2Handler.Configuration {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.http2MaxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: limits.http2InitialWindowSize),
            // One limit for the request head, whichever protocol carries it.
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderSize),
        ]
        // Streams share the connection window: room for 16 of them to send a full stream window at once.
        connection.targetWindowSize = min(limits.http2InitialWindowSize * 16, Int(Int32.max))
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = limits.http2InitialWindowSize
        // A stream stops pulling from its upstream past 64 KiB unsent (NIO's 8 KiB made large bodies crawl).
        stream.outboundBufferSizeHighWatermark = 64 * 1024
        stream.outboundBufferSizeLowWatermark = 32 * 1024
        return NIOHTTP2Handler.Configuration(connection: connection, stream: stream)
    }

    static func addHandlers(
        to channel: any Channel, current: FrontRuntime, loopLocal: LoopLocalState, isTLS: Bool, counters: HTTP2Counters
    ) throws {
        let limits = current.limits
        let configuration = configuration(limits)
        // nginx closes an HTTP/2 connection without streams after keepalive_timeout (its old http2_idle_timeout).
        let idle = limits.keepaliveTimeout > .zero ? limits.keepaliveTimeout : limits.clientHeaderTimeout
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: idle, maxAge: nil, maxGraceTime: limits.gracefulTimeout, keepalive: nil))
        let goAwayWatch = HTTP2GoAwayWatch()
        let guardHandler = HTTP2ConnectionGuard(
            loopLocal: loopLocal, counters: counters, goAwayWatch: goAwayWatch, maxRequests: limits.http2MaxRequests,
            idleTimeout: idle, graceTime: limits.gracefulTimeout)
        let events = HTTP2StreamEvents(
            guardHandler: NIOLoopBound(guardHandler, eventLoop: channel.eventLoop), management: management.http2StreamDelegate)
        let serverTokens = current.configuration.serverTokens
        let hsts = isTLS ? current.configuration.tls?.hsts : nil
        let compression = current.configuration.compression
        // Once per connection, not per stream (the addresses are the connection's).
        let connectionInfo = ProxyHandler.connectionInfo(of: channel, isTLS: isTLS)
        let http2 = NIOHTTP2Handler(
            mode: .server, eventLoop: channel.eventLoop, connectionConfiguration: configuration.connection,
            streamConfiguration: configuration.stream, streamDelegate: events
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let sync = stream.pipeline.syncOperations
                let stamp = ResponseStamp(clock: loopLocal.dateClock, serverTokens: serverTokens, hsts: hsts)
                try sync.addHandler(HTTP2AuthorityCheck.shared)
                try sync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try sync.addHandler(
                    ProxyHandler(
                        loopLocal: loopLocal, stamp: stamp, compression: compression, isTLS: isTLS, isHTTP2Stream: true,
                        connectionInfo: connectionInfo))
            }
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FlushCoalescer())
        try sync.addHandler(goAwayWatch)
        try sync.addHandler(http2)
        try sync.addHandler(guardHandler)
        try sync.addHandler(management)
        // Added after ALPN or the preface, the channel is already active: start the idle timer by hand.
        if channel.isActive { management.channelActive(context: try sync.context(handler: management)) }
    }
}
