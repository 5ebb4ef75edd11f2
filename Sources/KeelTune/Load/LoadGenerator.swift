import NIOCore
import NIOHTTP1
import NIOPosix

/// How the load arrives: closed loop (each connection sends its next request when the answer arrives; finds the
/// throughput) or open loop (a fixed arrival rate whatever the answers do; finds the latency at that rate).
public enum LoadPattern: Sendable, Equatable {
    case closed(connections: Int)
    case open(rate: Double, connections: Int)

    public var connections: Int {
        switch self {
        case .closed(let connections), .open(_, let connections): connections
        }
    }
}

/// What one measured window of load gave.
public struct LoadResult: Sendable {
    public var completed: Int
    public var errors: Int
    /// Latencies of the window's good answers, in microseconds.
    public var latencies: [UInt32]
    public var seconds: Double
    /// The most recent failure, e.g. "HTTP 404" or "connection refused", for the "every request failed" line.
    public var lastError: String?

    public var requestsPerSecond: Double { seconds > 0 ? Double(completed) / seconds : 0 }
}

/// An HTTP/1.1 keep-alive load generator on one event loop (the pool under test needs the other cores).
/// Everything it owns lives on that loop; the caller's thread only starts, opens and closes windows, and stops.
public final class LoadGenerator: @unchecked Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let state: LoadState

    public init(port: Int, paths: [WeightedPath], pattern: LoadPattern) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        state = LoadState(loop: loop, port: port, paths: paths, pattern: pattern)
    }

    /// Opens the connections and starts the load (unrecorded until `beginWindow`).
    public func start() {
        state.loop.execute { self.state.start() }
    }

    public func beginWindow() {
        try? state.loop.submit { self.state.beginWindow() }.wait()
    }

    public func endWindow() -> LoadResult {
        (try? state.loop.submit { self.state.endWindow() }.wait())
            ?? LoadResult(completed: 0, errors: 0, latencies: [], seconds: 0, lastError: "load generator stopped")
    }

    /// Closes every connection and the event loop.
    public func stop() {
        try? state.loop.submit { self.state.stop() }.wait()
        try? group.syncShutdownGracefully()
    }
}

/// The load generator's state; unchecked Sendable because only its event loop touches it.
final class LoadState: @unchecked Sendable {
    let loop: EventLoop
    private let port: Int
    private let pattern: LoadPattern
    private let heads: [HTTPRequestHead]
    /// Index into `heads` by weighted draw: each path appears its weight's times.
    private let draw: [Int]
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15

    private var stopped = false
    private var recording = false
    private var windowStart = NIODeadline.now()
    private var latencies: [UInt32] = []
    private var completed = 0
    private var errors = 0
    private var lastError: String?

    private var channels: [ObjectIdentifier: Channel] = [:]
    // Open loop: connections waiting for an arrival, and arrivals waiting for a connection (their intended start).
    private var idle: [LoadConnectionHandler] = []
    private var waiting: [NIODeadline] = []
    private var waitingHead = 0
    private var openStart = NIODeadline.now()
    private var issued = 0
    private var ticker: RepeatedTask?

    init(loop: EventLoop, port: Int, paths: [WeightedPath], pattern: LoadPattern) {
        self.loop = loop
        self.port = port
        self.pattern = pattern
        heads = paths.map { path in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "127.0.0.1:\(port)")
            headers.add(name: "User-Agent", value: "keel-pool-tune")
            return HTTPRequestHead(version: .http1_1, method: .GET, uri: path.path, headers: headers)
        }
        draw = paths.indices.flatMap { Array(repeating: $0, count: max(1, paths[$0].weight)) }
    }

    func start() {
        for _ in 0..<max(1, pattern.connections) { connect() }
        if case .open(let rate, _) = pattern {
            openStart = .now()
            // A tick per millisecond issues every arrival that is due, so the rate holds between ticks.
            ticker = loop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(1)) { _ in
                self.issueDueArrivals(rate: rate)
            }
        }
    }

    func beginWindow() {
        recording = true
        windowStart = .now()
        latencies.removeAll(keepingCapacity: true)
        completed = 0
        errors = 0
        lastError = nil
    }

    func endWindow() -> LoadResult {
        recording = false
        let seconds = Double((NIODeadline.now() - windowStart).nanoseconds) / 1e9
        return LoadResult(
            completed: completed, errors: errors, latencies: latencies, seconds: seconds, lastError: lastError)
    }

    func stop() {
        stopped = true
        ticker?.cancel()
        for channel in channels.values { channel.close(promise: nil) }
    }

    private func connect() {
        guard !stopped else { return }
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LoadConnectionHandler(state: self))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if self.stopped {
                        channel.close(promise: nil)
                        return
                    }
                    self.channels[ObjectIdentifier(channel)] = channel
                    channel.closeFuture.whenComplete { _ in self.channels[ObjectIdentifier(channel)] = nil }
                case .failure(let error):
                    self.fail("\(error)")
                    self.reconnectSoon()
                }
            }
    }

    /// A lost connection is replaced after a pause, so a dead server is not hammered in a tight loop.
    private func reconnectSoon() {
        guard !stopped else { return }
        loop.scheduleTask(in: .milliseconds(20)) { self.connect() }
    }

    private func fail(_ description: String) {
        guard recording else { return }
        errors += 1
        lastError = description
    }

    private func nextHead() -> HTTPRequestHead {
        // xorshift64: cheap and good enough to mix paths by weight.
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return heads[draw[Int(random % UInt64(draw.count))]]
    }

    // MARK: events from the connections

    func connectionReady(_ connection: LoadConnectionHandler) {
        guard !stopped else { return }
        switch pattern {
        case .closed:
            connection.send(nextHead(), intendedStart: .now())
        case .open:
            if let arrival = takeWaitingArrival() {
                connection.send(nextHead(), intendedStart: arrival)
            } else {
                idle.append(connection)
            }
        }
    }

    func answered(_ connection: LoadConnectionHandler, status: UInt, intendedStart: NIODeadline) {
        if recording {
            if (200..<400).contains(status) {
                completed += 1
                let micros = (NIODeadline.now() - intendedStart).nanoseconds / 1000
                latencies.append(UInt32(clamping: micros))
            } else {
                fail("HTTP \(status)")
            }
        }
        connectionReady(connection)
    }

    func connectionLost(_ connection: LoadConnectionHandler, inFlight: Bool, error: String?) {
        idle.removeAll { $0 === connection }
        guard !stopped else { return }
        if inFlight || error != nil { fail(error ?? "connection closed before the answer") }
        reconnectSoon()
    }

    private func issueDueArrivals(rate: Double) {
        guard !stopped else { return }
        let elapsed = Double((NIODeadline.now() - openStart).nanoseconds) / 1e9
        // Arrival k is due at k / rate, so arrivals 0 … ⌊elapsed × rate⌋ are all due now.
        let due = Int(elapsed * rate) + 1
        while issued < due {
            // An arrival's latency counts from when it was due, so a slow server cannot hide its queue.
            let arrival = openStart + .nanoseconds(Int64(Double(issued) / rate * 1e9))
            issued += 1
            if let connection = idle.popLast() {
                connection.send(nextHead(), intendedStart: arrival)
            } else if waiting.count - waitingHead < 1_000_000 {
                waiting.append(arrival)
            } else {
                fail("more than a million arrivals queued: the rate is far above what the pool serves")
            }
        }
    }

    private func takeWaitingArrival() -> NIODeadline? {
        guard waitingHead < waiting.count else { return nil }
        let arrival = waiting[waitingHead]
        waitingHead += 1
        if waitingHead > 4096 && waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
        return arrival
    }
}

/// One keep-alive connection of the load generator: one request at a time, the next when the answer has ended.
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let state: LoadState
    private var context: ChannelHandlerContext?
    private var intendedStart: NIODeadline?
    private var status: UInt = 0
    private var error: String?

    init(state: LoadState) { self.state = state }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        state.connectionReady(self)
        context.fireChannelActive()
    }

    func send(_ head: HTTPRequestHead, intendedStart: NIODeadline) {
        guard let context else { preconditionFailure("send before the handler was added") }
        self.intendedStart = intendedStart
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status.code
        case .body:
            break
        case .end:
            guard let started = intendedStart else { return }
            intendedStart = nil
            state.answered(self, status: status, intendedStart: started)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.error = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.connectionLost(self, inFlight: intendedStart != nil, error: error)
        intendedStart = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension LoadConnectionHandler: Sendable {}
