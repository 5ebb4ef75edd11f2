import NIOCore

/// Kept connections to upstream servers (HTTP/1.1 keep-alive, keel-wire uwsgi), one set per event loop and kind
/// (nginx's `keepalive` is per worker too), so taking and parking need no lock. Last parked, first taken.
///
/// On the keel wire it also decides who waits: a request goes to a kept connection whose worker has a free thread
/// (`PoolWorkerLoad`, counted across loops), or to a new connection when a worker with a free thread has none kept
/// here (or the pool has workers this loop does not know yet): the kernel hands that connection to a worker that is
/// waiting. When every worker is busy the request waits here, not in a worker's socket (first come, first served,
/// across loops: `PoolWorkerLoad.WaitingLoops`), until a request to that server ends; so a worker that dies takes
/// only its own requests with it, as with one connection per request. While a request on a new connection has not
/// learned its worker, kept connections are not used (that worker is busy but counted nowhere).
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

    /// One server's state on this loop; a class, so it is changed in place (an array in a dictionary value would be
    /// copied on every change).
    private final class Server {
        let waitingLoops: PoolWorkerLoad.WaitingLoops
        /// Registered in `waitingLoops` (requests wait, none of this loop's in flight to wake them).
        var starving = false
        var recheck: Scheduled<Void>?
        var idle: [Idle] = []

        init(waitingLoops: PoolWorkerLoad.WaitingLoops) {
            self.waitingLoops = waitingLoops
        }
        /// keel wire: the workers this loop has kept connections to, how many the pool says it has, this loop's
        /// requests holding or opening a connection, and the requests waiting for a free thread.
        var workers: [WeakLoad] = []
        var poolWorkers = 1
        var inFlight = 0
        var waiting = CircularBuffer<UpstreamExchange>()

        /// A new connection reaches a free thread: a known worker has one but no kept connection here, or the pool
        /// has workers this loop has no connection to yet (or none has answered on the keel wire yet).
        var mayConnect: Bool {
            var known = 0
            var anyFree = false
            for entry in workers {
                guard let load = entry.load, !load.isLeaving else { continue }
                anyFree = anyFree || load.hasFreeThread
                known += 1
            }
            if known == 0 || known < poolWorkers { return true }
            // A worker that looks free may be the one that took a connection not identified yet: wait for that.
            return anyFree && !waitingLoops.hasUnidentified
        }

        func hasFreeConnection(now: NIODeadline) -> Bool {
            if waitingLoops.hasUnidentified { return false }
            return idle.contains { entry in
                entry.expires > now && !entry.relay.isClosing && entry.channel.isActive
                    && (entry.relay.workerLoad.map { !$0.isLeaving && $0.hasFreeThread } ?? true)
            }
        }

        /// The last parked connection whose worker (on the keel wire) has a free thread; dead, expired and leaving
        /// ones are closed on the way.
        func takeFree(now: NIODeadline) -> (Channel, UpstreamResponseRelay)? {
            var index = idle.count - 1
            while index >= 0 {
                let entry = idle[index]
                if entry.expires <= now || entry.relay.isClosing || entry.relay.workerLoad?.isLeaving == true
                    || !entry.channel.isActive
                {
                    idle.remove(at: index)
                    entry.channel.close(promise: nil)
                } else if entry.relay.workerLoad?.hasFreeThread ?? true {
                    idle.remove(at: index)
                    return (entry.channel, entry.relay)
                }
                index -= 1
            }
            return nil
        }
    }

    private let loop: any EventLoop
    private var servers: [FrontConfiguration.ServerAddress: Server] = [:]
    private var sweeper: Scheduled<Void>?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    private func server(_ address: FrontConfiguration.ServerAddress) -> Server {
        if let server = servers[address] { return server }
        let server = Server(waitingLoops: PoolWorkerLoad.waitingLoops(server: address.description))
        servers[address] = server
        return server
    }

    // MARK: HTTP/1.1 keep-alive

    /// A kept connection to `address`, or nil for a new one.
    func take(_ address: FrontConfiguration.ServerAddress) -> (Channel, UpstreamResponseRelay)? {
        servers[address]?.takeFree(now: .now())
    }

    // MARK: keel wire

    /// Where `exchange`'s request goes now. After `.kept` or `.connect` the exchange calls `release` once it lets go
    /// of the connection; after `.wait` it is resumed (`resumeAfterWaiting`) or calls `stopWaiting`.
    /// `resuming`: a waiter whose turn it is (it passes the queue it was at the head of).
    func acquire(_ address: FrontConfiguration.ServerAddress, for exchange: UpstreamExchange, resuming: Bool = false) -> Acquired {
        let server = server(address)
        let keptAllowed = !server.waitingLoops.hasUnidentified
        // First come, first served: behind this loop's waiters, and behind other loops' while they wait.
        if !resuming && (!server.waiting.isEmpty || server.waitingLoops.othersWait(registered: server.starving)) {
            server.waiting.append(exchange)
            if server.inFlight == 0 { starve(server, address, takeFreeThreadNow: false) }
            return .wait
        }
        if keptAllowed, let (channel, relay) = server.takeFree(now: .now()) {
            server.inFlight += 1
            return .kept(channel, relay)
        }
        if server.mayConnect {
            server.inFlight += 1
            server.waitingLoops.unidentifiedStarted()
            return .connect
        }
        // A waiter that lost the thread it was woken for keeps its place at the head.
        if resuming { server.waiting.prepend(exchange) } else { server.waiting.append(exchange) }
        if server.inFlight == 0 { starve(server, address) }
        return .wait
    }

    /// A request on a new connection learned its worker (or ended without): kept connections may be used again.
    func identified(_ address: FrontConfiguration.ServerAddress) {
        guard let server = servers[address] else { return }
        server.waitingLoops.unidentifiedEnded()
        wakeWaiters(server, address)
        server.waitingLoops.wakeAll()
    }

    func release(_ address: FrontConfiguration.ServerAddress) {
        guard let server = servers[address] else { return }
        server.inFlight -= 1
        // A thread was freed: another loop that waits with nothing in flight goes first (else a busy loop would keep
        // every thread it frees and the other would wait for as long as the load lasts); then this loop's waiters.
        if server.waitingLoops.othersWait(registered: server.starving) {
            server.waitingLoops.wakeAll()
            // The thread is theirs: this loop waits for the next one.
            if !server.waiting.isEmpty && server.inFlight == 0 { starve(server, address, takeFreeThreadNow: false) }
        } else {
            wakeWaiters(server, address)
        }
    }

    /// Waiters go on while there is a free thread to send to.
    private func wakeWaiters(_ server: Server, _ address: FrontConfiguration.ServerAddress) {
        while let first = server.waiting.first, server.mayConnect || server.hasFreeConnection(now: .now()) {
            server.waiting.removeFirst()
            first.resumeAfterWaiting()
            if server.waiting.first === first { break }  // it found no thread after all: no spinning
        }
        if server.waiting.isEmpty {
            if server.starving {
                server.starving = false
                server.waitingLoops.remove(loop)
            }
        } else if server.inFlight == 0 {
            starve(server, address)
        }
    }

    private func wokenByAnotherLoop(_ address: FrontConfiguration.ServerAddress) {
        guard let server = servers[address] else { return }
        server.starving = false
        wakeWaiters(server, address)
        // A freed thread this loop did not use (its waiters left) goes on to the next waiting loop.
        if server.waiting.isEmpty && (server.mayConnect || server.hasFreeConnection(now: .now())) {
            server.waitingLoops.wakeAll()
        }
    }

    /// Nothing of this loop's in flight will end to wake its waiters: another loop's ending request will.
    /// `takeFreeThreadNow`: a thread freed between the check and the registration is taken at once; false when the
    /// loop defers to others that wait (the periodic recheck still guarantees progress).
    private func starve(_ server: Server, _ address: FrontConfiguration.ServerAddress, takeFreeThreadNow: Bool = true) {
        if server.recheck == nil {
            // A backstop against a wake-up lost in a race between loops: look again every 10 ms while starving.
            server.recheck = loop.assumeIsolated().scheduleTask(in: .milliseconds(10)) { [weak self] in
                guard let self, let server = self.servers[address] else { return }
                server.recheck = nil
                guard server.starving else { return }
                self.wakeWaiters(server, address)
                if server.starving, server.recheck == nil { self.starve(server, address, takeFreeThreadNow: false) }
            }
        }
        if !server.starving {
            server.starving = true
            // Kept for the process's life with its loop (LoopLocalState), so a strong, loop-bound reference.
            let this = NIOLoopBound(self, eventLoop: loop)
            server.waitingLoops.add(loop) { this.value.wokenByAnotherLoop(address) }
        }
        // A thread freed between the check and the registration: go now rather than wait for the next one.
        if takeFreeThreadNow, server.mayConnect || server.hasFreeConnection(now: .now()) { wakeWaiters(server, address) }
    }

    func stopWaiting(_ exchange: UpstreamExchange, address: FrontConfiguration.ServerAddress) {
        guard let server = servers[address], let index = server.waiting.firstIndex(where: { $0 === exchange }) else {
            return
        }
        server.waiting.remove(at: index)
    }

    // MARK: both

    func park(
        _ channel: Channel, relay: UpstreamResponseRelay, address: FrontConfiguration.ServerAddress, limit: Int,
        timeout: TimeAmount
    ) {
        let server = server(address)
        if let load = relay.workerLoad {
            server.poolWorkers = relay.poolWorkers
            if !server.workers.contains(where: { $0.load === load }) {
                // Workers come and go (recycling): the list holds the ones still referred to by a connection.
                server.workers.removeAll { $0.load == nil }
                server.workers.append(WeakLoad(load: load))
            }
        }
        guard limit > 0, channel.isActive, !relay.isClosing, server.idle.count < limit else {
            channel.close(promise: nil)
            return
        }
        // A worker runs at most --threads requests: more kept connections to it than that are never all usable, and
        // each one lengthens every free-connection scan (a burst of 100 requests before any worker was known left
        // 100 kept connections to a 2-thread pool, and scanning them was a tenth of keel's CPU).
        if let load = relay.workerLoad, server.idle.count >= load.capacity,
            server.idle.lazy.filter({ $0.relay.workerLoad === load }).count >= load.capacity
        {
            channel.close(promise: nil)
            return
        }
        relay.listener = nil
        // By address, not a weak Server: a weak reference would give the Server a refcount side table (slower
        // retains on the request path); the IdleUpstreamConnections lives as long as its loop.
        relay.onIdleClose = { [unowned self] in self.servers[address]?.idle.removeAll { $0.channel === channel } }
        server.idle.append(Idle(channel: channel, relay: relay, expires: .now() + timeout))
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
        var anyKept = false
        for server in servers.values {
            let expired = server.idle.filter { $0.expires <= now }
            if !expired.isEmpty {
                server.idle.removeAll { $0.expires <= now }
                for entry in expired { entry.channel.close(promise: nil) }
            }
            anyKept = anyKept || !server.idle.isEmpty
        }
        if anyKept { scheduleSweep() } else { sweeper = nil }
    }

    /// Closes every idle connection (after a reload changed the upstreams, and at shutdown).
    func closeAll() {
        for server in servers.values {
            for entry in server.idle { entry.channel.close(promise: nil) }
            server.idle = []
        }
        sweeper?.cancel()
        sweeper = nil
    }
}
