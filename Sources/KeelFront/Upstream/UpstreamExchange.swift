import NIOCore
import NIOHTTP1

/// One request's trip to an upstream group, on the client's event loop: pick a server, connect (one retry on another
/// server when the connect fails), send the buffered request, and relay the response with reads paced by the client.
/// The generic half of nginx's upstream module; the protocol-specific half is the codec given at connect.
final class UpstreamExchange: UpstreamResponseRelay.Listener {
    /// Why an exchange ended without a whole response; the status is what the client sees if no head was sent yet.
    enum Failure: Error, Equatable, CustomStringConvertible {
        case unreachable(String)
        case timedOut(String)
        case badResponse(String)

        var status: HTTPResponseStatus {
            switch self {
            case .unreachable, .badResponse: .badGateway
            case .timedOut: .gatewayTimeout
            }
        }

        var description: String {
            switch self {
            case .unreachable(let detail), .timedOut(let detail), .badResponse(let detail): detail
            }
        }
    }

    /// The client side, which writes what the exchange receives.
    protocol Sink: AnyObject {
        var clientIsWritable: Bool { get }
        func exchangeDidReceiveHead(_ head: HTTPResponseHead)
        func exchangeDidReceiveBody(_ body: ByteBuffer)
        func exchangeDidFinish()
        func exchangeDidFail(_ failure: Failure)
        /// The end of one upstream read: the moment to flush what it produced, in one write.
        func exchangeDidCompleteRead()
    }

    enum Kind {
        /// `keepalive` nil: one connection per request (the packet did not offer the keel wire).
        case uwsgi(packet: ByteBuffer, keepalive: IdleUpstreamConnections?)
        case http(keepalive: IdleUpstreamConnections)

        var keptConnections: IdleUpstreamConnections? {
            switch self {
            case .uwsgi(_, let keepalive): keepalive
            case .http(let keepalive): keepalive
            }
        }
    }

    private enum State {
        case idle
        /// keel wire: every worker is busy; waiting in this loop's queue for a free thread.
        case waiting(server: Int)
        case connecting(server: Int)
        case active(Channel, UpstreamResponseRelay, server: Int, reused: Bool)
        case finished
    }

    let group: UpstreamGroup
    private let kind: Kind
    private let head: HTTPRequestHead
    /// Held until the exchange ends: a spilled body's temp file lives as long as this buffer.
    private let body: RequestBodyBuffer
    private let loop: any EventLoop
    private weak var sink: (any Sink)?

    private var state = State.idle
    private var retried = false
    /// Resends after a keel-pool worker's goodbye (the request provably unread); bounded, as workers may all be leaving.
    private var goodbyeResends = 0
    /// The keel-pool worker this request is counted on (`PoolWorkerLoad`), once known.
    private var countedLoad: PoolWorkerLoad?
    /// keel wire: the server whose slot in this loop's `IdleUpstreamConnections` the exchange holds.
    private var slot: FrontConfiguration.ServerAddress?
    /// keel wire: the request went on a new connection whose worker is not known yet (see `WaitingLoops`).
    private var unidentifiedOn: FrontConfiguration.ServerAddress?
    private var receivedAnything = false
    private var responseKeepAlive = false
    private var requestWritten = false
    /// Reading is paused (autoRead off) while the client cannot take more.
    private var paused = false
    /// Which upstream timeout runs, on the connection's `LoopTimer` (kept across its requests, so arming one is a
    /// clock read rather than a scheduled task per request).
    private var runningTimeout: Timeout?
    private var timedRelay: UpstreamResponseRelay?
    /// keel wire: bounds the wait for a free worker thread by `read_timeout`, as nginx's read_timeout bounds a request
    /// queued in the pool's listen backlog (scheduled only when a request has to wait: every worker busy).
    private var waitTimeout: Scheduled<Void>?

    private enum Timeout {
        case send
        case read
    }
    private(set) var startTime = NIODeadline.now()
    private(set) var finishTime: NIODeadline?
    /// The server used last, for the access log ("unix:/run/app.sock").
    private(set) var serverDescription = "-"

    init(group: UpstreamGroup, kind: Kind, head: HTTPRequestHead, body: RequestBodyBuffer, loop: any EventLoop, sink: any Sink) {
        self.group = group
        self.kind = kind
        self.head = head
        self.body = body
        self.loop = loop
        self.sink = sink
    }

    func start() {
        startTime = .now()
        guard let server = group.pickServer() else {
            fail(.unreachable("upstream \"\(group.name)\" has no servers"))
            return
        }
        connect(server)
    }

    /// The client can take more: resume reading the upstream.
    func clientBecameWritable() {
        readIfClientCanTakeIt()
    }

    /// The client went away: drop the upstream connection (it cannot be reused mid-response).
    func cancel() {
        endWaitTimeout()
        if case .waiting(let server) = state, case .uwsgi(_, let kept?) = kind {
            kept.stopWaiting(self, address: group.server(server))
        }
        releaseSlot()
        guard case .active(let channel, let relay, _, _) = state else {
            state = .finished
            return
        }
        relay.listener = nil
        state = .finished
        releaseTimer()
        releaseLoad()
        channel.close(promise: nil)
    }

    // MARK: connecting

    private func connect(_ server: Int, resuming: Bool = false) {
        let address = group.server(server)
        serverDescription = address.description
        switch kind {
        case .uwsgi(_, let kept?):
            // Waiting until told otherwise: acquire may hand this exchange its turn before it returns.
            state = .waiting(server: server)
            switch kept.acquire(address, for: self, resuming: resuming) {
            case .kept(let channel, let relay):
                slot = address
                state = .connecting(server: server)
                attach(channel, relay, server: server, reused: true)
                return
            case .connect:
                slot = address
                unidentifiedOn = address
            case .wait:
                // Still waiting (acquire may have handed the turn over already, re-entrantly) and not yet timed.
                if case .waiting = state, waitTimeout == nil {
                    waitTimeout = loop.assumeIsolated().scheduleTask(in: group.configuration.readTimeout) { [self] in
                        waitTimedOut()
                    }
                }
                return
            }
        case .http(let kept):
            if let (channel, relay) = kept.take(address) {
                state = .connecting(server: server)
                attach(channel, relay, server: server, reused: true)
                return
            }
        case .uwsgi(_, nil):
            break
        }
        state = .connecting(server: server)
        let codec: UpstreamConnector.Codec
        switch kind {
        case .uwsgi: codec = .uwsgi
        case .http: codec = .http
        }
        UpstreamConnector.connect(
            to: address, resolved: group.socketAddresses[server], codec: codec, on: loop,
            timeout: group.configuration.connectTimeout)
            .assumeIsolated().whenComplete { result in
                guard case .connecting(let current) = self.state, current == server else {
                    // Cancelled meanwhile: the connection is not wanted.
                    if case .success(let (channel, _)) = result { channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let (channel, relay)):
                    self.group.recordSuccess(server)
                    self.attach(channel, relay, server: server, reused: false)
                case .failure(let error):
                    self.group.countFailure(server)
                    let markedDown = self.group.recordFailure(server)
                    FrontLog.error(
                        "upstream \"\(self.group.name)\": \(error)\(markedDown ? "; server marked down for \(self.group.configuration.failTimeout.prettySeconds)" : "")")
                    self.retryOrFail(after: server, failure: .unreachable("\(error)"))
                }
            }
    }

    /// keel wire: this waiting request's turn came (a worker has a free thread, or a new connection may reach one).
    func resumeAfterWaiting() {
        guard case .waiting(let server) = state else { return }
        connect(server, resuming: true)
        if case .waiting = state { return }
        endWaitTimeout()
    }

    /// keel wire: no thread of the server came free within read_timeout. The request was never sent, so it may go
    /// to another server whatever its method; the server counts as failed, as a read_timeout does.
    private func waitTimedOut() {
        waitTimeout = nil
        guard case .waiting(let server) = state, case .uwsgi(_, let kept?) = kind else { return }
        kept.stopWaiting(self, address: group.server(server))
        state = .idle
        let failure = Failure.timedOut(
            "upstream \"\(group.name)\" (\(serverDescription)) had no free worker thread for \(group.configuration.readTimeout.prettySeconds) (read_timeout)")
        countTowardMaxFails(server)
        if !retried, group.configuration.servers.count > 1 {
            FrontLog.error("\(failure), request: \"\(head.method) \(head.uri)\": trying another server")
        }
        retryOrFail(after: server, failure: failure)
    }

    private func endWaitTimeout() {
        waitTimeout?.cancel()
        waitTimeout = nil
    }

    /// Gives back the keel-wire slot taken for the current connection, waking a request that waits for one.
    private func releaseSlot() {
        endUnidentified()
        guard let address = slot, case .uwsgi(_, let kept?) = kind else { return }
        slot = nil
        kept.release(address)
    }

    private func retryOrFail(after server: Int, failure: Failure) {
        endWaitTimeout()  // a wait on the next server gets its own read_timeout
        releaseSlot()
        guard !retried, group.configuration.servers.count > 1, let next = group.pickServer(excluding: server) else {
            fail(failure)
            return
        }
        retried = true
        connect(next)
    }

    private func attach(_ channel: Channel, _ relay: UpstreamResponseRelay, server: Int, reused: Bool) {
        relay.listener = self
        relay.onIdleClose = nil
        timedRelay = relay
        state = .active(channel, relay, server: server, reused: reused)
        if let load = relay.workerLoad { count(on: load) }
        sendRequest(on: channel)
        readIfClientCanTakeIt()
    }

    private func sendRequest(on channel: Channel) {
        let sendTimeout = group.configuration.sendTimeout
        armTimer(.send, sendTimeout)
        let written = loop.makePromise(of: Void.self)
        let bodyData: IOData?
        switch body.content {
        case .memory(let buffer) where buffer.readableBytes > 0:
            bodyData = .byteBuffer(buffer)
        case .file(let file, let size) where size > 0:
            bodyData = .fileRegion(FileRegion(fileHandle: file, readerIndex: 0, endIndex: size))
        default:
            bodyData = nil
        }
        switch kind {
        case .uwsgi(let packet, _):
            let packetPart = UWSGIRequestPart.packet(packet, isHEAD: head.method == .HEAD)
            if let bodyData {
                channel.write(packetPart, promise: nil)
                channel.writeAndFlush(UWSGIRequestPart.body(bodyData), promise: written)
            } else {
                channel.writeAndFlush(packetPart, promise: written)
            }
        case .http:
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let bodyData { channel.write(HTTPClientRequestPart.body(bodyData), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: written)
        }
        written.futureResult.assumeIsolated().whenComplete { result in
            guard case .active(let current, _, _, _) = self.state, current === channel else { return }
            if case .success = result {
                self.requestWritten = true
                self.cancelTimer()
                // While the client holds reads back, waiting is the client's doing, not the upstream's.
                if !self.paused { self.armReadTimer() }
            }
            // A failed write (the backend closed early) is judged by what the read side sees next.
        }
    }

    // MARK: reading

    /// Reads run by themselves (autoRead) and are paused only while the client is not writable: toggling read
    /// interest per read would cost epoll_ctl calls on every request.
    private func readIfClientCanTakeIt() {
        guard case .active(let channel, _, _, _) = state else { return }
        let writable = sink?.clientIsWritable ?? false
        guard writable == paused else { return }
        paused = !writable
        try? channel.syncOptions?.setOption(.autoRead, value: writable)
        if paused {
            cancelTimer()
        } else if requestWritten {
            armReadTimer()
        }
    }

    private func armReadTimer() {
        let readTimeout = group.configuration.readTimeout
        armTimer(.read, readTimeout)
    }

    func upstreamDidRead(_ part: HTTPClientResponsePart) {
        guard case .active = state else { return }
        receivedAnything = true
        cancelTimer()
        switch part {
        case .head(let responseHead):
            if responseHead.status.code < 200 { return }  // 100 Continue from a backend: the body is already sent
            responseKeepAlive = responseHead.isKeepAlive
            sink?.exchangeDidReceiveHead(responseHead)
        case .body(let buffer):
            sink?.exchangeDidReceiveBody(buffer)
        case .end:
            finish()
        }
    }

    func upstreamDidCompleteRead() {
        sink?.exchangeDidCompleteRead()
        guard case .active = state else { return }
        readIfClientCanTakeIt()
        if !paused && requestWritten && runningTimeout == nil { armReadTimer() }
    }

    func upstreamDidIdentify(_ load: PoolWorkerLoad) {
        guard case .active = state, countedLoad == nil else { return }
        count(on: load)
        endUnidentified()
    }

    private func endUnidentified() {
        guard let address = unidentifiedOn, case .uwsgi(_, let kept?) = kind else { return }
        unidentifiedOn = nil
        kept.identified(address)
    }

    func upstreamDidSayGoodbye() {
        guard case .active(_, _, let server, _) = state else { return }
        cancelTimer()
        releaseLoad()
        releaseSlot()
        if !receivedAnything && goodbyeResends < Self.maxGoodbyeResends {
            // The worker is leaving and read nothing after its last response: the request may go anywhere, even a
            // POST, since no app saw it (docs/ARCHITECTURE.md, "The wire").
            goodbyeResends += 1
            state = .idle
            paused = false
            requestWritten = false
            connect(server)
            return
        }
        fail(.badResponse("upstream \"\(group.name)\" (\(serverDescription)) closed the connection (goodbye) before the response was complete"))
    }

    static let maxGoodbyeResends = 4

    func upstreamDidClose(error: (any Error)?) {
        guard case .active(_, let relay, let server, let reused) = state else { return }
        // On the keel wire a close without a goodbye may follow a read (a worker killed mid-request): never resent to
        // the same server (below; only an idempotent request goes once to another), and that worker's other kept
        // connections are dead too, though their closes may not have been read yet: marked before the slot is given
        // back, so no waiter takes one.
        if case .uwsgi = kind { relay.workerLoad?.leaving() }
        cancelTimer()
        releaseLoad()
        if case .uwsgi(_, let kept?) = kind, relay.workerLoad == nil, !receivedAnything {
            // Its worker never said who it was: if it died, which kept connections died with it is unknown, so the
            // slot goes back after this loop turn, once the closes of that worker's other connections are read.
            let (heldSlot, heldUnidentified) = (slot, unidentifiedOn)
            (slot, unidentifiedOn) = (nil, nil)
            loop.assumeIsolated().execute {
                if let address = heldUnidentified { kept.identified(address) }
                if let address = heldSlot { kept.release(address) }
            }
        } else {
            releaseSlot()
        }
        if case .http = kind, reused && !receivedAnything && (!requestWritten || Self.isIdempotent(head.method)) {
            // A pooled keep-alive connection the server had closed: try a fresh one, as nginx does; a POST that
            // may have reached the backend is not sent twice.
            state = .idle
            paused = false
            requestWritten = false
            connect(server)
            return
        }
        // Closed before a byte of the answer (a pool stopping, a worker killed, a host gone): another server, if safe.
        let unanswered = Failure.badResponse("upstream \"\(group.name)\" (\(serverDescription)) closed the connection before answering")
        if triedElsewhere(after: server, unanswered) { return }
        if let error = error as? UpstreamProtocolError, error.error.isCloseBeforeTheResponse {
            fail(unanswered)
            return
        }
        if let error = error as? UpstreamProtocolError {
            fail(.badResponse("upstream \"\(group.name)\" (\(serverDescription)) sent an invalid response: \(error)"))
            return
        }
        let detail = error.map { " (\($0))" } ?? ""
        fail(.badResponse("upstream \"\(group.name)\" (\(serverDescription)) closed the connection before the response was complete\(detail)"))
    }

    /// nginx's default `uwsgi_next_upstream error timeout`: a request that got no byte of its answer is tried once
    /// on another server of the group when sending it twice is safe (an idempotent method); false when it is not.
    private func triedElsewhere(after server: Int, _ failure: Failure) -> Bool {
        guard !receivedAnything, Self.isIdempotent(head.method), !retried, group.configuration.servers.count > 1,
            case .active(let channel, let relay, _, _) = state
        else { return false }
        FrontLog.error("\(failure), request: \"\(head.method) \(head.uri)\": trying another server")
        countTowardMaxFails(server)
        cancelTimer()
        releaseLoad()
        relay.listener = nil
        channel.close(promise: nil)
        state = .idle
        paused = false
        requestWritten = false
        retryOrFail(after: server, failure: failure)
        return true
    }

    /// A failed attempt: counted in the metrics, and toward the server's `max_fails` (said once when it goes down).
    private func countTowardMaxFails(_ server: Int) {
        group.countFailure(server)
        if group.recordFailure(server) {
            FrontLog.error(
                "upstream \"\(group.name)\" (\(serverDescription)): server marked down for \(group.configuration.failTimeout.prettySeconds)")
        }
    }

    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE: true
        default: false
        }
    }

    // MARK: ending

    private func finish() {
        guard case .active(let channel, let relay, let server, _) = state else { return }
        endWaitTimeout()
        state = .finished
        finishTime = .now()
        releaseTimer()
        relay.listener = nil
        releaseLoad()
        if case .uwsgi = kind { group.noteWire(server, keel: relay.workerLoad != nil) }
        if let keepalive = kind.keptConnections, responseKeepAlive, requestWritten {
            keepalive.park(
                channel, relay: relay, address: group.server(server), limit: group.configuration.keepalive,
                timeout: group.configuration.keepaliveTimeout)
        } else {
            channel.close(promise: nil)
        }
        // After parking: a request waiting for this worker's thread takes this very connection.
        releaseSlot()
        sink?.exchangeDidFinish()
    }

    private func count(on load: PoolWorkerLoad) {
        load.started()
        countedLoad = load
    }

    private func releaseLoad() {
        countedLoad?.finished()
        countedLoad = nil
    }

    private func fail(_ failure: Failure) {
        endWaitTimeout()
        releaseLoad()
        if case .waiting(let server) = state, case .uwsgi(_, let kept?) = kind {
            kept.stopWaiting(self, address: group.server(server))
        }
        if case .active(let channel, let relay, let server, _) = state {
            // nginx's passive health counts what its next_upstream would retry (nothing of the answer yet); a close
            // halfway through a body is not the server's health.
            if !receivedAnything { countTowardMaxFails(server) } else { group.countFailure(server) }
            relay.listener = nil
            channel.close(promise: nil)
        }
        if case .finished = state { return }
        state = .finished
        finishTime = .now()
        releaseTimer()
        releaseSlot()
        sink?.exchangeDidFail(failure)
    }

    private func armTimer(_ timeout: Timeout, _ delay: TimeAmount) {
        runningTimeout = timeout
        timedRelay?.timer.arm(in: delay)
    }

    func upstreamTimerFired() {
        guard let timeout = runningTimeout else { return }
        runningTimeout = nil
        let configuration = group.configuration
        let server = "upstream \"\(group.name)\" (\(serverDescription))"
        switch timeout {
        case .send:
            fail(.timedOut("\(server) took more than \(configuration.sendTimeout.prettySeconds) to accept the request (send_timeout)"))
        case .read:
            let failure = Failure.timedOut("\(server) sent nothing for \(configuration.readTimeout.prettySeconds) (read_timeout)")
            if case .active(_, _, let index, _) = state, triedElsewhere(after: index, failure) { return }
            fail(failure)
        }
    }

    private func cancelTimer() {
        runningTimeout = nil
        timedRelay?.timer.cancel()
    }

    /// The exchange is over: its timeout is off and it lets go of the connection.
    private func releaseTimer() {
        cancelTimer()
        timedRelay = nil
    }
}

extension TimeAmount {
    /// "2s", "1.5s", "250ms": for messages.
    var prettySeconds: String {
        let ms = nanoseconds / 1_000_000
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        if ms < 1000 { return "\(ms)ms" }
        return "\(Double(ms) / 1000)s"
    }
}
