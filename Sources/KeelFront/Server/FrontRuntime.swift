import KeelTLS
import NIOConcurrencyHelpers
import NIOCore

/// Everything a request reads from the configuration, built once per load: a HUP builds a new one and swaps it in,
/// requests already running keep the one they started with.
final class FrontRuntime: Sendable {
    let configuration: FrontConfiguration
    let router: Router
    let upstreams: [String: UpstreamGroup]
    let accessLog: AccessLog?
    /// The loaded certificates new TLS connections use (a HUP loads new ones; open connections keep theirs).
    let tls: TLSServerContext?
    /// Every static route's directory, opened once per load.
    private let staticRoots: [String: StaticRoot]
    /// This configuration's metric handles, resolved here so requests only index them; nil when metrics are off.
    let metrics: RuntimeMetrics?
    /// The status page, when `[status]` is configured.
    let statusPage: StatusPage?

    init(
        configuration: FrontConfiguration, tls: TLSServerContext?, accessLog: AccessLog?, metrics: FrontMetrics? = nil,
        statusBoard: StatusBoard? = nil
    ) {
        self.configuration = configuration
        self.tls = tls
        self.router = Router(routes: configuration.routes)
        self.metrics = metrics.map { RuntimeMetrics(front: $0, routes: $0.resolve(configuration)) }
        if let status = configuration.status, let statusBoard {
            self.statusPage = StatusPage(configuration: status, board: statusBoard)
        } else {
            self.statusPage = nil
        }
        var groups: [String: UpstreamGroup] = [:]
        for (name, upstream) in configuration.upstreams {
            groups[name] = UpstreamGroup(configuration: upstream, metrics: metrics?.upstreamMetrics(upstream))
        }
        self.upstreams = groups
        self.accessLog = accessLog
        var roots: [String: StaticRoot] = [:]
        for route in configuration.routes {
            if case .staticFiles(let files) = route.action, roots[files.directory] == nil {
                roots[files.directory] = StaticRoot(path: files.directory)
            }
        }
        self.staticRoots = roots
    }

    /// The opened root of a static route's directory.
    func staticRoot(_ directory: String) -> StaticRoot {
        staticRoots[directory] ?? StaticRoot(path: directory)
    }

    var limits: FrontConfiguration.Limits { configuration.limits }
}

/// The runtime currently in force, shared by every event loop.
final class FrontRuntimeHolder: Sendable {
    private let box: NIOLockedValueBox<FrontRuntime>

    init(_ runtime: FrontRuntime) {
        self.box = NIOLockedValueBox(runtime)
    }

    var current: FrontRuntime { box.withLockedValue { $0 } }

    func replace(with runtime: FrontRuntime) {
        box.withLockedValue { $0 = runtime }
    }
}

/// Per-event-loop state that outlives reloads (idle upstream keep-alive connections, deflate states), touched only
/// on its loop.
final class LoopLocalState: @unchecked Sendable {
    let loop: any EventLoop
    private let http: IdleUpstreamConnections
    private let uwsgi: IdleUpstreamConnections
    private let deflaterPool = DeflaterPool()
    private let clock = HTTPDateClock()
    private let accessLogBuffer = AccessLogBuffer()
    /// The runtime this loop's new requests use, handed over by `FrontServer.reload` (no lock on the request path).
    private var runtimeInForce: FrontRuntime
    private let openFileCache = OpenFileCache()
    /// This loop's histogram batch and request count.
    let metrics = LoopMetrics()

    init(loop: any EventLoop, runtime: FrontRuntime) {
        self.loop = loop
        self.runtimeInForce = runtime
        self.http = IdleUpstreamConnections(loop: loop)
        self.uwsgi = IdleUpstreamConnections(loop: loop)
    }

    /// Kept HTTP/1.1 backend connections.
    var httpConnections: IdleUpstreamConnections {
        loop.preconditionInEventLoop()
        return http
    }

    /// nginx's open_file_cache for this loop (used only when configured).
    var openFiles: OpenFileCache {
        loop.preconditionInEventLoop()
        return openFileCache
    }

    /// After a reload: the roots may point elsewhere now.
    func forgetOpenFiles() {
        openFileCache.reset(to: nil)
    }

    /// After a reload changed the upstreams, and at shutdown.
    func closeKeptConnections() {
        http.closeAll()
        uwsgi.closeAll()
    }

    var runtime: FrontRuntime {
        get {
            loop.preconditionInEventLoop()
            return runtimeInForce
        }
        set {
            loop.preconditionInEventLoop()
            runtimeInForce = newValue
        }
    }

    /// This loop's access-log lines not yet written.
    var accessLog: AccessLogBuffer {
        loop.preconditionInEventLoop()
        return accessLogBuffer
    }

    /// Writes this loop's pending access-log lines once its thread has stopped (nothing else touches them then).
    func flushAccessLogAfterLoopStopped() {
        accessLogBuffer.flush()
    }

    /// The `Date` value, formatted once per second.
    var dateClock: HTTPDateClock {
        loop.preconditionInEventLoop()
        return clock
    }

    /// Reset deflate states the gzip filter reuses.
    var deflaters: DeflaterPool {
        loop.preconditionInEventLoop()
        return deflaterPool
    }

    /// Kept keel-wire connections to keel-pools.
    var uwsgiConnections: IdleUpstreamConnections {
        loop.preconditionInEventLoop()
        return uwsgi
    }

    /// This loop's open HTTP/2 connections (a HUP sends each a GOAWAY); changed in place, never copied.
    private var http2Guards: [ObjectIdentifier: HTTP2ConnectionGuard] = [:]

    func registerHTTP2Connection(_ connection: HTTP2ConnectionGuard) {
        loop.preconditionInEventLoop()
        http2Guards[ObjectIdentifier(connection)] = connection
    }

    func unregisterHTTP2Connection(_ connection: HTTP2ConnectionGuard) {
        loop.preconditionInEventLoop()
        http2Guards[ObjectIdentifier(connection)] = nil
    }

    /// HUP: every HTTP/2 connection on this loop gets a GOAWAY, so its next requests come on a connection with the new
    /// configuration's limits (as nginx's new workers take over from the old).
    func goAwayHTTP2Connections() {
        loop.preconditionInEventLoop()
        for connection in http2Guards.values { connection.goAwayGracefully() }
    }
}
