import CKeelSys
import KeelApp
import KeelHTTP
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A worker process: uwsgi sockets served by `threads` blocking threads (UWSGIThreadServer), HTTP
/// sockets by an acceptor thread, one NIO event loop and `threads` app threads; the main thread waits
/// for the master's signals (TERM: finish in-flight requests and exit; INT/QUIT: exit now).
public enum WorkerRuntime {
    /// `loadApp` (a WSGI import) runs here, with the pool's signals already blocked (threads the app
    /// starts inherit that) and privileges dropped, before any serving thread exists.
    public static func run(
        _ given: WorkerConfiguration, loadApp: (() throws -> LoadedApp)? = nil
    ) -> Never {
        var loaded = given
        let configuration = given
        WorkerLog.workerID = configuration.id
        // Signals are taken synchronously by the main thread; block them before any thread exists.
        let signals = SignalSet.workerSignals
        signals.block()
        signal(SIGUSR1, SIG_IGN)  // not ours (see SignalSet.workerSignals); ignored rather than fatal
        if let masterPID = configuration.masterPID {
            _ = keel_set_parent_death_signal(SIGTERM)
            if getppid() != masterPID { startupFailed("the master (pid \(masterPID)) is gone", configuration) }
        }

        if let identity = configuration.dropTo {
            do { try Privileges.drop(uid: identity.uid, gid: identity.gid) } catch {
                startupFailed(error.description, configuration)
            }
        }
        for listener in configuration.listeners {
            // Non-blocking, so losing an accept race to another thread or worker returns EAGAIN instead of blocking.
            let flags = fcntl(listener.fd, F_GETFL)
            if flags < 0 || fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) < 0 {
                startupFailed("inherited socket fd \(listener.fd) is unusable: \(SystemError.message(errno))", configuration)
            }
        }
        if let loadApp {
            do {
                switch try loadApp() {
                case .sync(let handler): loaded.handler = handler
                case .async(let app):
                    loaded.asyncApp = app
                    // The app's start-up (ASGI lifespan) runs before the worker says ready; failing it is a load error.
                    try app.startServing()
                }
            } catch let error as AppLoadError {
                appLoadFailed(error, configuration)
            } catch {
                appLoadFailed(AppLoadError("cannot load the app: \(error)"), configuration)
            }
        }
        serve(loaded, signals: signals)
    }

    private static func serve(_ configuration: WorkerConfiguration, signals: SignalSet) -> Never {
        let uwsgiListeners = configuration.listeners.filter { $0.proto == .uwsgi }
        let httpListeners = configuration.listeners.filter { $0.proto == .http }

        // Reaching --max-requests: tell the master (it spawns the successor now), then drain as on TERM.
        let counter = RequestCounter(limit: configuration.maxRequests) {
            WorkerLog.info("served --max-requests \(configuration.maxRequests) requests: recycling")
            if let fd = configuration.statusFD { writeAll(fd, "recycle\n") }
            kill(getpid(), WorkerSignal.leave)
        }
        // An async app's uwsgi connections go through the event loop too (its loop needs no thread per request).
        let threaded = configuration.asyncApp == nil ? uwsgiListeners : []
        let evented = configuration.asyncApp == nil ? httpListeners : configuration.listeners
        let uwsgiServer = UWSGIThreadServer(listeners: threaded, configuration: configuration, counter: counter)
        if !threaded.isEmpty {
            do { try uwsgiServer.start() } catch { startupFailed(error.description, configuration) }
        }
        let http = evented.isEmpty ? nil : startHTTP(evented, configuration: configuration, counter: counter)
        reportReady(configuration)

        var stopping = false
        while true {
            if let scoreboard = configuration.scoreboard {
                scoreboard.board.heartbeat(scoreboard.record, now: monotonicMilliseconds())
            }
            let signal = signals.wait(timeoutMilliseconds: stopping ? 50 : 1000)
            switch signal {
            case SIGTERM where !stopping, WorkerSignal.leave where !stopping:
                // TERM: the pool is stopping, so serve the backlog too. USR2: only this worker leaves
                // (recycle, reload, TTOU); the others and its successor serve the shared backlog.
                stopping = true
                if let scoreboard = configuration.scoreboard { scoreboard.board.setState(scoreboard.record, .draining) }
                let sweep = signal == SIGTERM
                uwsgiServer.stop(sweep: sweep)
                http?.drain(sweep: sweep)
            case SIGINT, SIGQUIT:
                exit(0)
            case WorkerSignal.harakiri:
                // Other threads may be stuck in the app holding anything, so no drain and no atexit work.
                reportStuck(configuration)
                _exit(3)
            case WorkerSignal.reopenLogs:
                // The master's USR1 ("reopen logs"), forwarded as HUP (see SignalSet.workerSignals).
                if let path = configuration.logTo { LogFile.reopen(path) { WorkerLog.error($0) } }
            default:
                break
            }
            if stopping && uwsgiServer.isStopped && (http?.isDrained ?? true) {
                uwsgiServer.awaitGoodbyesRead()
                // Its shutdown (ASGI lifespan) after the last response; the master's --graceful-timeout bounds it.
                configuration.asyncApp?.stopServing(withinSeconds: 30)
                exit(0)
            }
        }
    }

    /// Harakiri's report before exiting: the requests this worker is running, then where the app's threads are.
    private static func reportStuck(_ configuration: WorkerConfiguration) {
        var running = ""
        if let scoreboard = configuration.scoreboard {
            let lines = scoreboard.board.read(scoreboard.record).threads.filter { $0.startedAt != nil }.map(\.requestLine)
            running = lines.isEmpty ? "" : " (running " + lines.map(\.debugDescription).joined(separator: ", ") + ")"
        }
        WorkerLog.error("harakiri: a request ran over --harakiri\(running); the app's stacks follow, then exiting")
        if let app = configuration.asyncApp { app.reportStuckThreads() } else { configuration.handler.reportStuckThreads() }
    }

    /// The HTTP side: an acceptor thread gated by the thread slots, one NIO event loop, the app threads.
    private static func startHTTP(
        _ listeners: [WorkerConfiguration.InheritedListener], configuration: WorkerConfiguration, counter: RequestCounter
    ) -> HTTPServing {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let eventLoop = group.next()
        let gate = SlotGate(threads: configuration.threads)
        let scheduler = try! eventLoop.submit {
            let scheduler = RequestScheduler(
                    eventLoop: eventLoop, threads: configuration.threads, gate: gate, counter: counter,
                    scoreboard: configuration.scoreboard,
                    firstRow: configuration.asyncApp == nil && configuration.listeners.contains { $0.proto == .uwsgi }
                        ? configuration.threads : 0,
                    appThreads: configuration.asyncApp == nil)
            scheduler.writeTimeout = .seconds(Int64(configuration.socketTimeout))
            return NIOLoopBound(scheduler, eventLoop: eventLoop)
        }.wait()
        let bootstrap = connectionBootstrap(configuration: configuration, group: group, scheduler: scheduler)
        let uwsgiBootstrap = ClientBootstrap(group: group).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    UWSGIAsyncConnectionHandler(configuration: configuration, scheduler: scheduler.value))
            }
        }
        let acceptor = Acceptor(listeners: listeners, gate: gate) { accepted in
            (accepted.wire == .uwsgi ? uwsgiBootstrap : bootstrap).withConnectedSocket(accepted.fd).whenFailure { error in
                WorkerLog.error("cannot serve an accepted connection: \(error)")
                gate.give()
            }
        }
        acceptor.start()
        return HTTPServing(acceptor: acceptor, scheduler: scheduler)
    }

    /// Stops and watches the HTTP side during a graceful stop.
    final class HTTPServing: Sendable {
        let acceptor: Acceptor
        let scheduler: NIOLoopBound<RequestScheduler>
        private let drained = Atomic<Bool>(false)

        init(acceptor: Acceptor, scheduler: NIOLoopBound<RequestScheduler>) {
            self.acceptor = acceptor
            self.scheduler = scheduler
        }

        var isDrained: Bool { drained.load(ordering: .acquiring) }

        /// Stops the acceptor; once it has handed over the swept backlog, drains the connections.
        func drain(sweep: Bool) {
            acceptor.onStopped = { [self] in
                scheduler.eventLoop.execute { [self] in
                    scheduler.value.onDrained = { [self] in
                        scheduler.value.shutdownThreads()
                        drained.store(true, ordering: .releasing)
                    }
                    scheduler.value.drain()
                }
            }
            acceptor.stop(sweep: sweep)
        }
    }

    /// How an accepted HTTP connection is set up; the acceptor thread hands fds to it.
    private static func connectionBootstrap(
        configuration: WorkerConfiguration,
        group: MultiThreadedEventLoopGroup,
        scheduler: NIOLoopBound<RequestScheduler>
    ) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    // Pipelining, --socket-timeout and malformed requests' answers are HTTPConnectionHandler's own.
                    if configuration.asyncApp == nil {
                        try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    } else {
                        // As NIO's configure does, but bytes after a WebSocket handshake go on to the frame decoder.
                        try sync.addHandler(HTTPResponseEncoder())
                        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
                    }
                    let local = channel.localAddress
                    let server = (local?.ipAddress ?? "localhost", local?.port.map(String.init) ?? "")
                    try sync.addHandler(
                        HTTPConnectionHandler(configuration: configuration, scheduler: scheduler.value, serverAddress: server))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
    }

    /// The status pipe stays open after "ready": a recycling worker says so on it too.
    private static func reportReady(_ configuration: WorkerConfiguration) {
        guard let fd = configuration.statusFD else { return }
        writeAll(fd, "ready\n")
    }

    /// The app cannot load: the traceback goes to the log as it is, the master gets `fatal: …` and stops
    /// the pool with exit code 1 instead of respawning workers that would fail the same way.
    static func appLoadFailed(_ error: AppLoadError, _ configuration: WorkerConfiguration) -> Never {
        if !error.details.isEmpty { writeAll(2, error.details + "\n") }
        WorkerLog.error(error.summary)
        if let fd = configuration.statusFD { writeAll(fd, "fatal: \(error.summary.replacingNewlines)\n") }
        exit(1)
    }

    /// A line for the pool's log from app code (wsgi.errors, WSGI tracebacks), prefixed like the worker's own.
    public static func log(_ message: String) { WorkerLog.info(message) }

    /// --py-autoreload saw `change` ("PATH MTIME_NS SIZE"): the master reloads the pool, once per distinct change.
    public static func reportChangedSource(_ change: String, statusFD: Int32) {
        writeAll(statusFD, "autoreload \(change.replacingNewlines)\n")
    }

    static func startupFailed(_ message: String, _ configuration: WorkerConfiguration) -> Never {
        startupFailed(message, statusFD: configuration.statusFD)
    }

    /// Ends a worker that cannot start, telling the master why on the status pipe.
    public static func startupFailed(_ message: String, statusFD: Int32?) -> Never {
        WorkerLog.error(message)
        if let fd = statusFD { writeAll(fd, "error: \(message)\n") }
        exit(1)
    }
}

extension String {
    /// One status-pipe line: the master reads the pipe line by line.
    var replacingNewlines: String { String(map { $0 == "\n" || $0 == "\r" ? " " : $0 }) }
}

func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        bytes = bytes.dropFirst(written)
    }
}
