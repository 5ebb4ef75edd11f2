import CKeelSys
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A worker process: one event loop accepting on the inherited sockets, `threads` app threads, and
/// the main thread waiting for the master's signals (TERM: finish in-flight requests and exit;
/// INT/QUIT: exit now).
public enum WorkerRuntime {
    public static func run(_ configuration: WorkerConfiguration) -> Never {
        WorkerLog.workerID = configuration.id
        // Signals are taken synchronously by the main thread; block them before any thread exists.
        let signals = SignalSet.workerSignals
        signals.block()
        if let masterPID = configuration.masterPID {
            _ = keel_set_parent_death_signal(SIGTERM)
            if getppid() != masterPID { startupFailed("the master (pid \(masterPID)) is gone", configuration) }
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let eventLoop = group.next()
        let gate = SlotGate(threads: configuration.threads)
        let scheduler = try! eventLoop.submit {
            NIOLoopBound(
                RequestScheduler(eventLoop: eventLoop, threads: configuration.threads, gate: gate), eventLoop: eventLoop)
        }.wait()

        for listener in configuration.listeners {
            // Non-blocking so that losing an accept race to another worker returns EAGAIN instead of blocking.
            let flags = fcntl(listener.fd, F_GETFL)
            if flags < 0 || fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) < 0 {
                startupFailed("inherited socket fd \(listener.fd) is unusable: \(SystemError.message(errno))", configuration)
            }
        }
        let bootstraps = Dictionary(
            uniqueKeysWithValues: [WorkerConfiguration.Wire.uwsgi, .http].map {
                ($0, connectionBootstrap($0, configuration: configuration, group: group, scheduler: scheduler))
            })
        let acceptor = Acceptor(listeners: configuration.listeners, gate: gate) { accepted in
            bootstraps[accepted.wire]!.withConnectedSocket(accepted.fd).whenFailure { error in
                WorkerLog.error("cannot serve an accepted connection: \(error)")
                gate.give()
            }
        }
        acceptor.start()
        reportReady(configuration)

        while true {
            let signal = signals.wait(timeoutMilliseconds: nil)
            switch signal {
            case SIGTERM:
                acceptor.stop()
                eventLoop.execute {
                    scheduler.value.onDrained = {
                        scheduler.value.shutdownThreads()
                        exit(0)
                    }
                    scheduler.value.drain()
                }
            case SIGINT, SIGQUIT:
                exit(0)
            default:
                break  // HUP and USR1 are the master's business
            }
        }
    }

    /// How an accepted connection of each wire is set up; the acceptor thread hands fds to it.
    private static func connectionBootstrap(
        _ wire: WorkerConfiguration.Wire,
        configuration: WorkerConfiguration,
        group: MultiThreadedEventLoopGroup,
        scheduler: NIOLoopBound<RequestScheduler>
    ) -> ClientBootstrap {
        let timeout = TimeAmount.seconds(Int64(configuration.socketTimeout))
        return ClientBootstrap(group: group)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                let scheduler = scheduler.value
                do {
                    let sync = channel.pipeline.syncOperations
                    switch wire {
                    case .uwsgi:
                        try sync.addHandler(IdleCloseHandler(timeout: timeout))
                        try sync.addHandler(ByteToMessageHandler(UWSGIRequestDecoder()))
                        try sync.addHandler(UWSGIConnectionHandler(configuration: configuration, scheduler: scheduler))
                    case .http:
                        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                        try sync.addHandler(IdleStateHandler(readTimeout: timeout))
                        let local = channel.localAddress
                        let server = (local?.ipAddress ?? "localhost", local?.port.map(String.init) ?? "")
                        try sync.addHandler(
                            HTTPConnectionHandler(configuration: configuration, scheduler: scheduler, serverAddress: server))
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
    }

    private static func reportReady(_ configuration: WorkerConfiguration) {
        guard let fd = configuration.statusFD else { return }
        writeAll(fd, "ready\n")
        close(fd)
    }

    static func startupFailed(_ message: String, _ configuration: WorkerConfiguration) -> Never {
        WorkerLog.error(message)
        if let fd = configuration.statusFD { writeAll(fd, "error: \(message)\n") }
        exit(1)
    }
}

/// Closes a uwsgi connection that stays silent past --socket-timeout before its request is complete.
final class IdleCloseHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var responding = false

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) { arm(context) }
    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !responding { arm(context) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The request has been read in full once the response starts: the app's time is not limited here.
        responding = true
        deadline?.cancel()
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            WorkerLog.error("uwsgi request not received within --socket-timeout: connection closed")
            loopBound.value.close(promise: nil)
        }
    }
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
