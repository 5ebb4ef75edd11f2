import KeelApp
import NIOCore
import NIOPosix

/// Runs requests on the worker's `--threads T` threads (inline on the I/O thread when T = 1), queueing
/// a request when all T are busy, and keeps the slot count the acceptor reads (see `SlotGate`).
/// Owned by the worker's one event loop: every method runs on it.
final class RequestScheduler {
    let eventLoop: any EventLoop
    let threads: Int
    let gate: SlotGate
    /// nil with one thread: the app then runs inline on the I/O thread, as uWSGI does.
    private let threadPool: NIOThreadPool?
    /// With one thread, a request whose body is still arriving runs here: inline, its blocking body
    /// reads would stop the loop that fills them. Made at the first such request.
    private var bodyThread: NIOThreadPool?

    private var running = 0
    /// Rows of this worker's scoreboard record not taken by a running request.
    private var freeThreadRows: [Int]
    private let scoreboard: (board: Scoreboard, record: Int)?
    private var queue = CircularBuffer<() -> Void>()
    private var connections: [ObjectIdentifier: any DrainableConnection] = [:]
    private(set) var isDraining = false
    /// Called once, on the loop, when draining has finished every connection.
    var onDrained: (() -> Void)?

    private let counter: RequestCounter

    /// `firstRow`: this scheduler's rows in the worker's scoreboard record start there (after the uwsgi
    /// threads' rows when the worker serves both protocols).
    init(
        eventLoop: any EventLoop, threads: Int, gate: SlotGate, counter: RequestCounter,
        scoreboard: (board: Scoreboard, record: Int)?, firstRow: Int, appThreads: Bool = true
    ) {
        self.eventLoop = eventLoop
        self.threads = threads
        self.gate = gate
        self.counter = counter
        self.scoreboard = scoreboard
        self.freeThreadRows = Array((firstRow..<firstRow + threads).reversed())
        if threads > 1 && appThreads {
            let pool = NIOThreadPool(numberOfThreads: threads)
            pool.start()
            self.threadPool = pool
        } else {
            self.threadPool = nil
        }
    }

    var runsInline: Bool { threadPool == nil }
    /// --socket-timeout, for writes to a client that stops reading.
    var writeTimeout: TimeAmount = .seconds(4)

    // MARK: connections

    /// A connection accepted by the acceptor, which already took its slot for the first request.
    func connectionOpened(_ connection: any DrainableConnection) {
        connections[ObjectIdentifier(connection)] = connection
        if isDraining { connection.drain() }
    }

    /// Takes a slot for a keep-alive connection's next request (its first came with the accept).
    func takeSlot() { gate.take() }

    /// Gives back a slot: the request is done, or the connection closed before sending one.
    func giveSlot() { gate.give() }

    func connectionClosed(_ connection: any DrainableConnection) {
        connections[ObjectIdentifier(connection)] = nil
        finishDrainIfIdle()
    }

    // MARK: requests

    /// Runs `job` on an app thread (or inline) when one is free; `completion` runs on the loop after it.
    /// `offLoop`: the job blocks on the loop's own work (a streamed request body), so never inline.
    func execute(
        requestLine: [String], offLoop: Bool = false, _ job: @escaping @Sendable () -> Void,
        completion: @escaping () -> Void
    ) {
        admit { [self] in
            let row = claimRow(requestLine)
            let completion = { [self] in
                releaseRow(row)
                completion()
            }
            if let pool = threadPool ?? (offLoop ? singleBodyThread() : nil) {
                let bound = NIOLoopBound((scheduler: self, completion: completion), eventLoop: eventLoop)
                pool.submit { [eventLoop] _ in
                    job()
                    eventLoop.execute { bound.value.scheduler.finished(bound.value.completion) }
                }
            } else {
                job()
                finished(completion)
            }
        }
    }

    /// Starts `begin` now when fewer than `threads` run and nobody queues before it, else queues it.
    private func admit(_ begin: @escaping () -> Void) {
        if running < threads && queue.isEmpty {
            begin()
        } else {
            queue.append(begin)
        }
    }

    /// A request starts: it runs, on a scoreboard row of its own (running ≤ threads, so one is always free).
    private func claimRow(_ requestLine: [String]) -> Int {
        running += 1
        let row = freeThreadRows.popLast()!
        scoreboard?.board.requestStarted(
            scoreboard!.record, thread: row, lineParts: requestLine, now: monotonicMilliseconds())
        return row
    }

    /// Its row is free again; `finished` then counts the request as served.
    private func releaseRow(_ row: Int) {
        if webSocketRows.remove(row) == nil {
            scoreboard?.board.requestFinished(scoreboard!.record, thread: row, now: monotonicMilliseconds())
        }
        freeThreadRows.append(row)
    }

    private func singleBodyThread() -> NIOThreadPool {
        if let bodyThread { return bodyThread }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        bodyThread = pool
        return pool
    }

    private func finished(_ completion: () -> Void) {
        running -= 1
        counter.requestServed()
        completion()
        if running < threads, let next = queue.popFirst() {
            next()
        }
        finishDrainIfIdle()
    }

    // MARK: async apps

    private var lastExchangeID = 0

    func nextExchangeID() -> Int {
        lastExchangeID += 1
        return lastExchangeID
    }

    /// Hands a request to an async app when fewer than `threads` (--worker-connections) run, else queues it (a
    /// kept-alive connection's next request can arrive while the worker is full). It counts as running (a
    /// scoreboard row, the drain) until `asyncFinished`.
    func executeAsync(requestLine: [String], _ start: @escaping (_ row: Int) -> Void) {
        admit { [self] in start(claimRow(requestLine)) }
    }

    /// Rows of accepted WebSockets: their handshake counted as a request, and a socket open for an hour is not a
    /// request running for an hour (--harakiri would kill the worker).
    private var webSocketRows: Set<Int> = []

    func webSocketAccepted(row: Int) {
        guard webSocketRows.insert(row).inserted else { return }
        scoreboard?.board.requestFinished(scoreboard!.record, thread: row, now: monotonicMilliseconds())
    }

    func asyncFinished(row: Int) {
        releaseRow(row)
        finished {}
    }

    // MARK: graceful stop

    /// Stops accepting, lets running and queued requests finish, closes idle keep-alive connections.
    func drain() {
        guard !isDraining else { return }
        isDraining = true
        for connection in connections.values { connection.drain() }
        finishDrainIfIdle()
    }

    private func finishDrainIfIdle() {
        guard isDraining, connections.isEmpty, running == 0, queue.isEmpty else { return }
        let done = onDrained
        onDrained = nil
        done?()
    }

    func shutdownThreads() {
        try? threadPool?.syncShutdownGracefully()
        try? bodyThread?.syncShutdownGracefully()
    }
}

/// A connection the scheduler can ask to finish: close now if idle, else after the current response.
protocol DrainableConnection: AnyObject {
    func drain()
}
