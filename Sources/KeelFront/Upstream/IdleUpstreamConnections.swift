import NIOCore

/// Kept connections to upstream servers (HTTP/1.1 keep-alive, keel-wire uwsgi), one set per event loop and kind
/// (nginx's `keepalive` is per worker too), so taking and parking need no lock. Last parked, first taken.
///
/// On the keel wire it also decides who waits: a request goes to a kept connection whose worker has a free thread
/// (`PoolWorkerLoad`, counted across loops), or to a new connection when a worker with a free thread has none kept
/// here (or the pool has workers this loop does not know yet): the kernel hands that connection to a worker that is
/// waiting. When every worker is busy the request waits here, not in a worker's socket, until one of this loop's
/// requests to that server ends; so a worker that dies takes only its own requests with it, as with one
/// connection per request. A loop with nothing in flight to the server never waits: it connects, and the listen
/// queue holds the request.
final class IdleUpstreamConnections {
    enum Acquired {
        case kept(Channel, UpstreamResponseRelay)
        case connect
        case wait
    }

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
    /// keel wire, per server: the workers this loop has kept connections to, how many the pool says it has, this
    /// loop's requests holding or opening a connection, and the requests waiting for a free thread.
    private var workers: [FrontConfiguration.ServerAddress: [WeakLoad]] = [:]
    private var poolWorkers: [FrontConfiguration.ServerAddress: Int] = [:]
    private var inFlight: [FrontConfiguration.ServerAddress: Int] = [:]
    private var waiting: [FrontConfiguration.ServerAddress: CircularBuffer<UpstreamExchange>] = [:]
    private var sweeper: Scheduled<Void>?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    // MARK: HTTP/1.1 keep-alive

    /// A kept connection to `address`, or nil for a new one.
    func take(_ address: FrontConfiguration.ServerAddress) -> (Channel, UpstreamResponseRelay)? {
        takeFree(address, now: .now())
    }

    // MARK: keel wire

    /// Where `exchange`'s request goes now. After `.kept` or `.connect` the exchange calls `release` once it lets go
    /// of the connection; after `.wait` it is resumed (`resumeAfterWaiting`) or calls `stopWaiting`.
    func acquire(_ address: FrontConfiguration.ServerAddress, for exchange: UpstreamExchange) -> Acquired {
        if let (channel, relay) = takeFree(address, now: .now()) {
            inFlight[address, default: 0] += 1
            return .kept(channel, relay)
        }
        if inFlight[address, default: 0] == 0 || mayConnect(address) {
            inFlight[address, default: 0] += 1
            return .connect
        }
        waiting[address, default: []].append(exchange)
        return .wait
    }

    func release(_ address: FrontConfiguration.ServerAddress) {
        inFlight[address, default: 1] -= 1
        guard var queue = waiting[address], !queue.isEmpty else { return }
        // Waiters go on while there is a free thread to send to (or nothing of this loop's left to wait for).
        while let first = queue.first,
            inFlight[address, default: 0] == 0 || mayConnect(address) || hasFreeConnection(address)
        {
            queue.removeFirst()
            waiting[address] = queue
            first.resumeAfterWaiting()
            queue = waiting[address] ?? []
        }
        waiting[address] = queue
    }

    func stopWaiting(_ exchange: UpstreamExchange, address: FrontConfiguration.ServerAddress) {
        guard var queue = waiting[address], let index = queue.firstIndex(where: { $0 === exchange }) else { return }
        queue.remove(at: index)
        waiting[address] = queue
    }

    /// A new connection reaches a free thread: a known worker has one but no kept connection here, or the pool has
    /// workers this loop has no connection to yet (or it has not answered on the keel wire yet).
    private func mayConnect(_ address: FrontConfiguration.ServerAddress) -> Bool {
        let known = workers[address, default: []].compactMap(\.load).filter { !$0.isLeaving }
        return known.isEmpty || known.count < poolWorkers[address, default: 1] || known.contains(where: \.hasFreeThread)
    }

    private func hasFreeConnection(_ address: FrontConfiguration.ServerAddress) -> Bool {
        idle[address, default: []].contains { entry in
            entry.channel.isActive && !(entry.relay.workerLoad?.isLeaving ?? false)
                && (entry.relay.workerLoad?.hasFreeThread ?? true)
        }
    }

    // MARK: both

    /// The last parked connection to `address` whose worker (on the keel wire) has a free thread; dead, expired and
    /// leaving ones are closed on the way.
    private func takeFree(_ address: FrontConfiguration.ServerAddress, now: NIODeadline) -> (Channel, UpstreamResponseRelay)? {
        guard var list = idle[address], !list.isEmpty else { return nil }
        defer { idle[address] = list }
        var index = list.count - 1
        while index >= 0 {
            let entry = list[index]
            if !entry.channel.isActive || entry.expires <= now || entry.relay.workerLoad?.isLeaving == true {
                list.remove(at: index)
                entry.channel.close(promise: nil)
            } else if entry.relay.workerLoad?.hasFreeThread ?? true {
                list.remove(at: index)
                return (entry.channel, entry.relay)
            }
            index -= 1
        }
        return nil
    }

    func park(
        _ channel: Channel, relay: UpstreamResponseRelay, address: FrontConfiguration.ServerAddress, limit: Int,
        timeout: TimeAmount
    ) {
        if let load = relay.workerLoad {
            poolWorkers[address] = relay.poolWorkers
            if !(workers[address]?.contains { $0.load === load } ?? false) {
                // Workers come and go (recycling): the list holds the ones still referred to by a connection.
                workers[address, default: []].removeAll { $0.load == nil }
                workers[address, default: []].append(WeakLoad(load: load))
            }
        }
        guard limit > 0, channel.isActive, idle[address, default: []].count < limit else {
            channel.close(promise: nil)
            return
        }
        relay.listener = nil
        relay.onIdleClose = { [weak self] in self?.forget(channel, address: address) }
        idle[address, default: []].append(Idle(channel: channel, relay: relay, expires: .now() + timeout))
        // Reading on while idle: a server closing it (or saying goodbye) is noticed at once.
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        if sweeper == nil { scheduleSweep() }
    }

    private func scheduleSweep() {
        sweeper = loop.assumeIsolated().scheduleTask(in: .seconds(1)) { [weak self] in self?.closeExpired() }
    }

    /// keepalive_timeout: idle connections past it are closed, checked once a second while any is kept.
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

    /// Closes every idle connection (after a reload changed the upstreams, and at shutdown).
    func closeAll() {
        for (_, list) in idle { for entry in list { entry.channel.close(promise: nil) } }
        idle = [:]
        sweeper?.cancel()
        sweeper = nil
    }
}
