import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import KeelHTTP
import KeelTLS
import NIOTLS

/// keel's listeners: one NIO server channel per `[[listen]]` on a shared event loop group, each connection getting
/// the HTTP/1.1 pipeline (NIO's HTTP/1 codec with keel's limits → ProxyHandler, which owns timeouts, pipelining,
/// filters and protocol errors as state), behind the TLS handler on TLS listeners (HTTP is set up once ALPN has
/// chosen it). Reload swaps the runtime (routes, upstreams, logs, certificates); shutdown quiesces: stop accepting,
/// let in-flight requests finish, then close.
public final class FrontServer: Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    private let group: MultiThreadedEventLoopGroup
    private let runtime: FrontRuntimeHolder
    private let loopLocals: [ObjectIdentifier: LoopLocalState]
    /// Dropped once shutdown has used it: its deinit resolves a promise on a loop, which must still be running then.
    private let quiesceBox: NIOLockedValueBox<ServerQuiescingHelper?>
    private let counter: ConnectionCounter
    private let channels: NIOLockedValueBoxChannels
    /// The process's metrics (`[metrics]`), nil when off; each runtime resolves its handles from it.
    public let metrics: FrontMetrics?
    /// What the status page serves (`[status]`), nil when off.
    let statusBoard: StatusBoard?
    /// HTTP/2 connections, streams and cut-offs, for the metrics and the status page.
    let http2Counters = HTTP2Counters()

    public init(
        configuration: FrontConfiguration, tls: TLSServerContext?, accessLog: AccessLog?, group: MultiThreadedEventLoopGroup,
        metrics: FrontMetrics? = nil
    ) {
        self.group = group
        self.metrics = metrics
        let board = configuration.status.map { _ in StatusBoard() }
        self.statusBoard = board
        self.runtime = FrontRuntimeHolder(
            FrontRuntime(configuration: configuration, tls: tls, accessLog: accessLog, metrics: metrics, statusBoard: board))
        var locals: [ObjectIdentifier: LoopLocalState] = [:]
        for loop in group.makeIterator() { locals[ObjectIdentifier(loop)] = LoopLocalState(loop: loop, runtime: runtime.current) }
        self.loopLocals = locals
        self.quiesceBox = NIOLockedValueBox(ServerQuiescingHelper(group: group))
        self.counter = ConnectionCounter(limit: configuration.limits.maxConnections)
        self.channels = NIOLockedValueBoxChannels()
    }

    public var configuration: FrontConfiguration { runtime.current.configuration }

    /// Binds every listener; on any failure the ones already bound are closed and the error names the address.
    public func start() async throws {
        for listener in configuration.listeners {
            do {
                let bootstrap = bootstrap(for: listener)
                // A socket systemd passed in is already bound and listening: used as it is.
                let channel = try await (listener.inheritedFD.map { bootstrap.withBoundSocket($0) }
                    ?? bootstrap.bind(host: listener.host, port: listener.port)).get()
                channels.append(channel)
            } catch {
                for channel in channels.all { try? await channel.close() }
                quiesceBox.withLockedValue { $0 = nil }
                throw StartError(description: "cannot listen on \(listener.description): \(error) (is another server using that port?)")
            }
        }
    }

    /// The addresses actually bound (port 0 resolved), in listener order.
    public var boundAddresses: [SocketAddress] { channels.all.compactMap(\.localAddress) }

    private func bootstrap(for listener: FrontConfiguration.Listener) -> ServerBootstrap {
        let loopLocals = self.loopLocals
        let quiesce = quiesceBox.withLockedValue { $0! }
        let counter = self.counter
        // A plaintext listener that redirects sends clients to the first TLS listener's port.
        let redirectPort = listener.redirectToHTTPS ? configuration.listeners.first(where: \.tls)?.port : nil
        let isTLS = listener.tls
        let offersHTTP2 = listener.speaksHTTP2
        let metrics = self.metrics
        let http2Counters = self.http2Counters
        // A TLS listener with http2 = false narrows ALPN when another TLS listener offers h2 (one context serves both).
        let narrowedALPN: [String]? = isTLS && !offersHTTP2 && configuration.listeners.contains(where: { $0.tls && $0.http2 }) ? ["http/1.1"] : nil
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    try channel.pipeline.syncOperations.addHandler(ConnectionLimiter(counter: counter))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // Measured (fixed route, wrk -c64, one loop): 4 reads per readiness event 20.4-20.9 µs per request, 1
            // read 22.5-23.3 µs, 16 reads no better than 4.
            .childChannelOption(.maxMessagesPerRead, value: 4)
            // nginx's client_header_buffer_size (1k), growing for larger reads: an idle connection keeps its last
            // read buffer, so NIO's 2 KiB default cost 1.5 KiB per idle connection more (bench/idle.sh).
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let local = loopLocals[ObjectIdentifier(channel.eventLoop)] else {
                        throw StartError(description: "a connection on an event loop keel did not start")
                    }
                    let current = local.runtime
                    guard isTLS else {
                        guard offersHTTP2 else {
                            try Self.addHTTPHandlers(to: channel, current: current, loopLocal: local, isTLS: false, redirectPort: redirectPort)
                            return
                        }
                        // h2c with prior knowledge beside HTTP/1.1: the first bytes decide.
                        let sniffer = HTTP2PrefaceSniffer(timeout: current.limits.clientHeaderTimeout) { verdict, channel in
                            if verdict == .http2 {
                                try HTTP2Pipeline.addHandlers(to: channel, current: current, loopLocal: local, isTLS: false, counters: http2Counters)
                            } else {
                                try Self.addHTTPHandlers(to: channel, current: current, loopLocal: local, isTLS: false, redirectPort: redirectPort)
                            }
                        }
                        try channel.pipeline.syncOperations.addHandler(sniffer)
                        return
                    }
                    guard let tls = current.tls, let settings = current.configuration.tls else {
                        throw StartError(description: "TLS listener without certificates")
                    }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(
                        TLSServerHandler(
                            context: tls, handshakeTimeout: settings.handshakeTimeout, applicationProtocols: narrowedALPN,
                            log: { FrontLog.info($0) }, handshakeFailed: { metrics?.tlsHandshakeFailures.increment() }))
                    // ALPN picks the pipeline: h2 when offered and chosen, HTTP/1.1 otherwise (no ALPN included).
                    try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                        metrics?.tlsHandshakes.increment()
                        return channel.eventLoop.makeCompletedFuture {
                            if offersHTTP2, case .negotiated("h2") = result {
                                try HTTP2Pipeline.addHandlers(to: channel, current: current, loopLocal: local, isTLS: true, counters: http2Counters)
                            } else {
                                try Self.addHTTPHandlers(to: channel, current: current, loopLocal: local, isTLS: true, redirectPort: nil)
                            }
                        }
                    })
                }
            }
    }

    /// The HTTP/1.1 pipeline, the same on plaintext and TLS connections.
    private static func addHTTPHandlers(
        to channel: any Channel, current: FrontRuntime, loopLocal: LoopLocalState, isTLS: Bool,
        redirectPort: Int?
    ) throws {
        let limits = current.limits
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderSize
        decoderLimits.maxHeaderListSize = limits.maxHeaderSize
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
        let stamp = ResponseStamp(
            clock: loopLocal.dateClock, serverTokens: current.configuration.serverTokens,
            hsts: isTLS ? current.configuration.tls?.hsts : nil)
        // Timeouts, pipelining, gzip, Date/Server/HSTS and the answers to malformed requests are ProxyHandler's own,
        // not handlers of their own: each pass-through handler cost every request 1.5-4 µs (measured by leaving each
        // out, fixed route).
        try sync.addHandler(
            ProxyHandler(
                loopLocal: loopLocal, stamp: stamp, compression: current.configuration.compression, isTLS: isTLS,
                httpsRedirectPort: redirectPort))
    }

    /// Puts a new configuration in force for new requests (HUP). Listener changes need a restart; the caller is told.
    public func reload(_ configuration: FrontConfiguration, tls: TLSServerContext?, accessLog: AccessLog?) -> [String] {
        var notes: [String] = []
        let old = runtime.current.configuration
        if old.listeners != configuration.listeners { notes.append("listeners changed: restart keel to apply them") }
        if old.eventLoops != configuration.eventLoops { notes.append("event_loops changed: restart keel to apply it") }
        if old.limits.maxConnections != configuration.limits.maxConnections {
            notes.append("limits.max_connections changed: restart keel to apply it")
        }
        if old.metrics != configuration.metrics { notes.append("[metrics] changed: restart keel to apply it") }
        if (old.status == nil) != (configuration.status == nil) {
            notes.append("[status] added or removed: restart keel to apply it")
        } else if old.status?.pools != configuration.status?.pools {
            notes.append("[status.pools] changed: restart keel to apply it (path and allow are applied now)")
        }
        let fresh = FrontRuntime(
            configuration: configuration, tls: tls, accessLog: accessLog, metrics: metrics,
            statusBoard: configuration.status == nil ? nil : statusBoard)
        runtime.replace(with: fresh)
        for local in loopLocals.values {
            local.loop.execute {
                local.runtime = fresh
                local.forgetOpenFiles()
                local.goAwayHTTP2Connections()
            }
        }
        if old.upstreams != configuration.upstreams {
            for local in loopLocals.values { local.loop.execute { local.closeKeptConnections() } }
        }
        return notes
    }

    public var accessLog: AccessLog? { runtime.current.accessLog }

    /// Client connections open now, across every listener.
    public var connectionCount: Int { counter.current }

    /// Requests finished since start, across every loop (each loop counts its own).
    public var requestsServed: Int {
        loopLocals.values.reduce(0) { $0 + $1.metrics.requestsServed.load(ordering: .relaxed) }
    }

    /// Every loop hands its batch of histogram samples over (before a scrape, and each second).
    func flushMetricSamples(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let flushed = loopLocals.values.map { local in local.loop.submit { local.metrics.flush() } }
        return EventLoopFuture.andAllComplete(flushed, on: loop)
    }

    /// The text exposition for `/metrics`, with every loop's samples in.
    func metricsExposition(on loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        guard let metrics else { return loop.makeSucceededFuture([]) }
        let counter = self.counter
        let http2 = http2Counters
        return flushMetricSamples(on: loop).map {
            metrics.exposition(connections: counter.current, http2Connections: http2.connectionsOpen.load(ordering: .relaxed))
        }
    }

    /// Writes every loop's pending access-log lines and hands its histogram samples over (the 1 s tick, USR1,
    /// shutdown).
    public func flushAccessLogs() async {
        for local in loopLocals.values {
            try? await local.loop.submit {
                local.accessLog.flush()
                local.metrics.flush()
            }.get()
        }
    }

    /// The last lines (499s of connections closed at the very end), once the loops' threads have stopped.
    public func flushAccessLogsAfterLoopsStopped() {
        for local in loopLocals.values { local.flushAccessLogAfterLoopStopped() }
    }

    /// Stops accepting at once, lets requests in flight finish within `grace`, then closes what is left.
    public func shutdown(grace: TimeAmount) async {
        let done = group.next().makePromise(of: Void.self)
        guard let quiesce = quiesceBox.withLockedValue({ $0 }) else { return }
        quiesce.initiateShutdown(promise: done)
        let counter = self.counter
        let deadline = group.next().scheduleTask(in: grace) {
            FrontLog.warning("graceful timeout (\(grace.prettySeconds)) passed with requests in flight: closing their connections")
            counter.closeAll()
            done.succeed()
        }
        try? await done.futureResult.get()
        deadline.cancel()
        quiesceBox.withLockedValue { $0 = nil }
        for local in loopLocals.values { local.loop.execute { local.closeKeptConnections() } }
        await flushAccessLogs()
    }
}

/// The bound server channels (appended once at start, read for addresses and cleanup).
final class NIOLockedValueBoxChannels: Sendable {
    private let box = NIOLockedValueBox<[Channel]>([])
    func append(_ channel: Channel) { box.withLockedValue { $0.append(channel) } }
    var all: [Channel] { box.withLockedValue { $0 } }
}
