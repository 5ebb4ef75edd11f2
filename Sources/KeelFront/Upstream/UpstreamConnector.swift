import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Opens connections to backend servers (unix or TCP) on the client's event loop, with the connect timeout and
/// reads paused by the exchange whenever the client cannot take more.
enum UpstreamConnector {
    struct ConnectError: Error, CustomStringConvertible {
        var address: FrontConfiguration.ServerAddress
        var underlying: any Error
        var description: String { "connect() to \(address) failed (\(underlying))" }
    }

    enum Codec: Sendable {
        case uwsgi
        case http
    }

    static func connect(
        to address: FrontConfiguration.ServerAddress, resolved: SocketAddress?, codec: Codec, on loop: any EventLoop,
        timeout: TimeAmount
    ) -> EventLoopFuture<(Channel, UpstreamResponseRelay)> {
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    switch codec {
                    case .uwsgi:
                        try sync.addHandler(UWSGIClientCodec())
                    case .http:
                        try sync.addHTTPClientHandlers(leftOverBytesStrategy: .dropBytes)
                    }
                    let relay = UpstreamResponseRelay()
                    relay.serverKey = address.description
                    try sync.addHandler(relay)
                }
            }
        if case .tcp = address {
            // Kept connections to other hosts: keep-alive probes find a peer that vanished (TCP_NODELAY is NIO's default).
            bootstrap = bootstrap.channelOption(.socketOption(.so_keepalive), value: 1)
        }
        let connected: EventLoopFuture<Channel>
        switch (address, resolved) {
        case (.unix, .some(let resolved)):
            // A unix connect completes (or fails) at once: done here, without NIO's connect promise and timeout task.
            switch connectUnixNow(resolved) {
            case .success(let fd): connected = bootstrap.withConnectedSocket(fd)
            case .failure(let error): connected = loop.makeFailedFuture(error)
            }
        case (_, .some(let resolved)):
            connected = bootstrap.connect(to: resolved)
        case (.unix(let path), nil):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        case (.tcp(let host, let port), nil):
            connected = bootstrap.connect(host: host, port: port)
        }
        return connected.flatMapErrorThrowing { error in
            throw ConnectError(address: address, underlying: error)
        }.flatMapThrowing { channel in
            (channel, try channel.pipeline.syncOperations.handler(type: UpstreamResponseRelay.self))
        }
    }
}

/// A non-blocking unix-socket connect, which the kernel completes or refuses immediately (EAGAIN: the backlog is full,
/// the same failure nginx reports).
private func connectUnixNow(_ address: SocketAddress) -> Result<CInt, IOError> {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return .failure(IOError(errnoCode: errno, reason: "socket")) }
    let result = address.withSockAddr { pointer, size in Glibc.connect(fd, pointer, socklen_t(size)) }
    guard result == 0 else {
        let code = errno
        close(fd)
        return .failure(IOError(errnoCode: code, reason: "connect"))
    }
    return .success(fd)
}

/// Idle kept connections to upstream servers (HTTP/1.1 keep-alive, keel-wire uwsgi), one set per event loop and
/// kind (nginx's `keepalive` is per worker too), so taking and parking need no lock. Last parked, first taken: the
/// connection that just finished belongs to the worker most likely to have a free thread.
final class IdleUpstreamConnections {
    private struct Idle {
        var channel: Channel
        var relay: UpstreamResponseRelay
        var expires: NIODeadline
    }

    private struct WeakLoad {
        weak var load: PoolWorkerLoad?
    }

    private let loop: any EventLoop
    private var idle: [FrontConfiguration.ServerAddress: [Idle]] = [:]
    /// The keel-pool workers this loop has kept connections to, per server: whether any has a free thread.
    private var workers: [FrontConfiguration.ServerAddress: [WeakLoad]] = [:]
    private var sweeper: Scheduled<Void>?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// A kept connection to `address`, or nil for a new one. On the keel wire it prefers a worker with a free thread;
    /// when it has none but another known worker is free, nil: a new connection is accepted by a free worker. When
    /// every known worker is busy, the least loaded one's connection: waiting there costs no more than in the
    /// listen queue, and saves the connect.
    func take(_ address: FrontConfiguration.ServerAddress, now: NIODeadline = .now()) -> (Channel, UpstreamResponseRelay)? {
        guard var list = idle[address], !list.isEmpty else { return nil }
        defer { idle[address] = list }
        var leastLoaded: (index: Int, spare: Int)?
        var index = list.count - 1
        while index >= 0 {
            let entry = list[index]
            if !entry.channel.isActive || entry.expires <= now || entry.relay.workerLoad?.isLeaving == true {
                list.remove(at: index)
                entry.channel.close(promise: nil)
                leastLoaded = nil  // indices above shifted; rescanning is rare enough
                index = list.count - 1
                continue
            }
            guard let load = entry.relay.workerLoad else {
                list.remove(at: index)
                return (entry.channel, entry.relay)
            }
            let spare = load.capacity - load.running
            if spare > 0 {
                list.remove(at: index)
                return (entry.channel, entry.relay)
            }
            if leastLoaded == nil || spare > leastLoaded!.spare { leastLoaded = (index, spare) }
            index -= 1
        }
        guard let leastLoaded else { return nil }
        let known = workers[address, default: []].compactMap(\.load).filter { !$0.isLeaving }
        // A known worker with a free thread, or a worker this loop has no connection to yet: a new connection.
        if known.contains(where: \.hasFreeThread) || known.count < list[leastLoaded.index].relay.poolWorkers { return nil }
        let entry = list.remove(at: leastLoaded.index)
        return (entry.channel, entry.relay)
    }

    func park(
        _ channel: Channel, relay: UpstreamResponseRelay, address: FrontConfiguration.ServerAddress, limit: Int,
        timeout: TimeAmount
    ) {
        guard limit > 0, channel.isActive, idle[address, default: []].count < limit else {
            channel.close(promise: nil)
            return
        }
        relay.listener = nil
        relay.onIdleClose = { [weak self] in self?.forget(channel, address: address) }
        idle[address, default: []].append(Idle(channel: channel, relay: relay, expires: .now() + timeout))
        if let load = relay.workerLoad, !(workers[address]?.contains { $0.load === load } ?? false) {
            // Workers come and go (recycling): the list holds the ones still referred to by a connection.
            workers[address, default: []].removeAll { $0.load == nil }
            workers[address, default: []].append(WeakLoad(load: load))
        }
        // Reading on while idle: a server closing it (or saying goodbye) is noticed at once.
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        if sweeper == nil { scheduleSweep() }
    }

    /// keepalive_timeout: idle connections past it are closed, checked once a second while any is kept.
    private func scheduleSweep() {
        sweeper = loop.assumeIsolated().scheduleTask(in: .seconds(1)) { [weak self] in self?.closeExpired() }
    }

    private func closeExpired() {
        let now = NIODeadline.now()
        for (address, list) in idle {
            let expired = list.filter { $0.expires <= now }
            guard !expired.isEmpty else { continue }
            idle[address] = list.filter { $0.expires > now }
            for entry in expired { entry.channel.close(promise: nil) }
        }
        idle = idle.filter { !$0.value.isEmpty }
        if idle.isEmpty { sweeper = nil } else { scheduleSweep() }
    }

    private func forget(_ channel: Channel, address: FrontConfiguration.ServerAddress) {
        idle[address]?.removeAll { $0.channel === channel }
    }

    /// Closes every idle connection (after a reload changed the upstreams).
    func closeAll() {
        for (_, list) in idle { for entry in list { entry.channel.close(promise: nil) } }
        idle = [:]
        sweeper?.cancel()
        sweeper = nil
    }

    var count: Int { idle.values.reduce(0) { $0 + $1.count } }
}
