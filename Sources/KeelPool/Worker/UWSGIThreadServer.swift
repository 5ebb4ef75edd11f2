import CKeelSys
import KeelApp
import NIOCore
import Synchronization
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// Serves `--socket` (uwsgi) listeners the way uWSGI's threads do: each of the worker's T threads
/// waits for work, reads the packet, runs the app and writes the reply itself, with blocking I/O
/// bounded by --socket-timeout. A thread busy with a request is not waiting, so the kernel gives the
/// next connection to an idle thread or worker: the `--threads` contract holds with no hand-off.
///
/// Work is a new connection or, on the keel wire, the next request on a persistent connection: both
/// wait in one epoll set (`UWSGIConnectionTable`), so an idle persistent connection holds no thread.
final class UWSGIThreadServer: @unchecked Sendable {
    private let listeners: [WorkerConfiguration.InheritedListener]
    private let configuration: WorkerConfiguration
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let running = Atomic<Int>(0)
    private let draining = Atomic<Bool>(false)
    private let sweepOnStop = Atomic<Bool>(false)
    /// Hands each thread its index, its row in this worker's scoreboard record.
    private let nextThreadIndex = Atomic<Int>(0)
    /// Set by `start`, before any thread exists.
    private var table: UWSGIConnectionTable!
    /// What this worker's keel-wire frames say: its pid and how many requests it runs at once (plus, per response,
    /// how many workers serve in the pool).
    private let identity: KeelWire.Responder

    private let counter: RequestCounter
    /// Listeners on TCP (keel-pools on other hosts): their connections get TCP_NODELAY.
    private let tcpListeners: Set<Int32>

    init(listeners: [WorkerConfiguration.InheritedListener], configuration: WorkerConfiguration, counter: RequestCounter) {
        self.listeners = listeners
        self.configuration = configuration
        self.counter = counter
        self.tcpListeners = Set(listeners.map(\.fd).filter { fd in
            var domain: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 && (domain == AF_INET || domain == AF_INET6)
        })
        self.identity = KeelWire.Responder(
            pid: UInt32(getpid()), capacity: UInt16(clamping: configuration.threads))
        var fds: [Int32] = [-1, -1]
        _ = keel_pipe2(&fds, O_CLOEXEC)
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    /// True once every thread has left its loop (after `stop()`).
    var isStopped: Bool { running.load(ordering: .acquiring) == 0 }

    /// The last step before the worker exits (see `UWSGIConnectionTable.awaitGoodbyesRead`).
    func awaitGoodbyesRead() {
        table?.awaitGoodbyesRead(milliseconds: 1000)
    }

    /// Starts the T threads; fails (startup error) if the system refuses one.
    func start() throws(PoolError) {
        let scoreboard = configuration.scoreboard
        table = try UWSGIConnectionTable { accepted, persistent in
            scoreboard?.board.setConnections(scoreboard!.record, accepted: accepted, persistent: persistent)
        }
        for (index, listener) in listeners.enumerated() { try table.watchListener(fd: listener.fd, index: index) }
        try table.watchWake(fd: wakeRead)
        // Counted before any starts: the count reaches 0 once, when the last thread leaves (it closes the listeners).
        running.store(configuration.threads, ordering: .releasing)
        for index in 0..<configuration.threads {
            let box = Unmanaged.passRetained(self)
            var thread = pthread_t()
            let created = pthread_create(&thread, nil, { raw in
                let server = Unmanaged<UWSGIThreadServer>.fromOpaque(raw!).takeRetainedValue()
                server.serveLoop(thread: server.nextThreadIndex.wrappingAdd(1, ordering: .relaxed).oldValue)
                return nil
            }, box.toOpaque())
            if created != 0 {
                box.release()
                running.subtract(configuration.threads - index, ordering: .acquiringAndReleasing)  // never started
                stop()
                throw PoolError(
                    "cannot start thread \(index + 1) of --threads \(configuration.threads): \(SystemError.message(created)); "
                        + "lower --threads or raise the process limits (ulimit -u / -v)")
            } else {
                pthread_detach(thread)
            }
        }
    }

    /// Stops accepting; threads finish the request they are serving, then leave, closing each persistent
    /// connection at that request boundary (idle ones now). With `sweep` (the whole pool is stopping) they
    /// first serve what the kernel had already queued on the listeners.
    func stop(sweep: Bool = false) {
        sweepOnStop.store(sweep, ordering: .relaxed)
        draining.store(true, ordering: .releasing)
        for listener in listeners { table?.unwatchListener(fd: listener.fd) }
        table?.closeIdle()
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)  // never read, so it wakes every thread's epoll_wait
    }

    private func serveLoop(thread: Int) {
        defer {
            // The last thread out (after its sweep) closes this worker's copies of the listeners at once: from then
            // on a connect to a stopping pool's TCP socket is refused (keel tries another server) rather than
            // completed by the kernel and reset when the worker exits, after its wait for the goodbyes' closes.
            if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                for listener in listeners { close(listener.fd) }
            }
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(64 * 1024)
        defer { sweepBacklog(thread: thread, buffer: &buffer) }
        while !draining.load(ordering: .acquiring) {
            guard let tag = table.wait() else {
                if errno == EINTR { continue }
                WorkerLog.error("epoll_wait on the uwsgi sockets failed: \(SystemError.message(errno)); not accepting")
                return
            }
            switch tag {
            case .wake:
                // A connection whose wake-up this worker took just before it stopped watching the listeners would
                // wait for nobody: each leaving thread accepts what is queued once and serves it.
                if !sweepOnStop.load(ordering: .relaxed) { acceptOnceBeforeLeaving(thread: thread, buffer: &buffer) }
                return
            case .listener(let index):
                // Non-blocking listener: losing the race to another thread or worker is EAGAIN, not a hang.
                let fd = keel_accept4(listeners[index].fd, Int32(SOCK_CLOEXEC.rawValue))
                if fd < 0 {
                    if errno == EMFILE || errno == ENFILE { AcceptBackoff.outOfDescriptors(errno) }
                    continue
                }
                serveAccepted(fd, from: listeners[index].fd, thread: thread, buffer: &buffer)
            case .connection(let fd, let generation):
                guard table.claim(fd, generation: generation) else { continue }
                serveConnection(BlockingConnection(fd: fd), generation: generation, thread: thread, buffer: &buffer)
            }
        }
    }

    private func acceptOnceBeforeLeaving(thread: Int, buffer: inout ByteBuffer) {
        for listener in listeners {
            let fd = keel_accept4(listener.fd, Int32(SOCK_CLOEXEC.rawValue))
            guard fd >= 0 else { continue }
            serveAccepted(fd, from: listener.fd, thread: thread, buffer: &buffer)
        }
    }

    /// When the pool stops, connections the kernel already queued are served, not reset by the close
    /// of the listener. Bounded, since on a TCP socket new connections may keep arriving until then.
    private func sweepBacklog(thread: Int, buffer: inout ByteBuffer) {
        guard sweepOnStop.load(ordering: .relaxed) else { return }
        BacklogSweep.acceptQueued(on: listeners, flags: Int32(SOCK_CLOEXEC.rawValue)) { fd, listener in
            serveAccepted(fd, from: listener.fd, thread: thread, buffer: &buffer)
        }
    }

    private func serveAccepted(_ fd: Int32, from listenerFD: Int32, thread: Int, buffer: inout ByteBuffer) {
        if tcpListeners.contains(listenerFD) {
            // A kept connection's next response must not wait on Nagle for the previous one's ACK.
            var on: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        let generation = table.opened(fd)
        serveConnection(
            BlockingConnection(fd: fd, timeoutSeconds: configuration.socketTimeout), generation: generation,
            thread: thread, buffer: &buffer, accepted: true)
    }

    /// Serves one request, then parks a persistent connection for its next one or closes it.
    private func serveConnection(
        _ connection: BlockingConnection, generation: UInt32, thread: Int, buffer: inout ByteBuffer, accepted: Bool = false
    ) {
        let persists = serve(connection, thread: thread, buffer: &buffer, accepted: accepted)
        if persists && table.park(connection.fd, generation: generation) { return }
        table.forget(connection.fd)
        if persists {
            // Leaving (recycle, reload, TERM): a request boundary, so say nothing more will be read.
            table.sayGoodbye(connection.fd)
        } else {
            connection.close()
        }
    }

    private var responder: KeelWire.Responder {
        var frame = identity
        if let scoreboard = configuration.scoreboard {
            frame.workers = UInt16(clamping: max(1, scoreboard.board.servingWorkers()))
        }
        return frame
    }

    /// Reads and answers one request; true when the connection can carry the next one (the keel wire, answered whole).
    private func serve(_ connection: BlockingConnection, thread: Int, buffer: inout ByteBuffer, accepted: Bool) -> Bool {
        var frameSent = false
        buffer.clear()
        var parser = UWSGIRequestParser()
        var head: UWSGIRequestHead?
        var body = ByteBuffer()
        var reader: SocketBodyReader?
        do {
            reading: while true {
                while let event = try parser.next(&buffer) {
                    switch event {
                    case .head(let h):
                        if accepted && h.modifier2 == KeelWire.offer {
                            // A new connection's worker says who it is now, not with the response: until keel knows
                            // which worker took the connection it keeps off every kept connection (see the wire).
                            var frame = ByteBuffer()
                            KeelWire.writeResponseFrame(responder, into: &frame)
                            frameSent = connection.writeAll(frame)
                        }
                        if h.contentLength > configuration.effectiveBodyLimit {
                            WorkerLog.error(
                                "request body of \(h.contentLength) bytes is over the limit of "
                                    + "\(configuration.effectiveBodyLimit) (--limit-post): 413")
                            respondWithError(
                                connection, status: 413, "Request Entity Too Large\n",
                                frame: h.modifier2 == KeelWire.offer && !frameSent ? responder : nil)
                            return false
                        }
                        head = h
                        if h.contentLength > 0 && configuration.handler.streamsRequestBody {
                            // The app pulls the body from the socket as it reads; what it leaves is drained below.
                            let early = buffer.readSlice(length: min(buffer.readableBytes, h.contentLength))!
                            reader = SocketBodyReader(
                                connection: connection, received: early, length: h.contentLength)
                            break reading
                        }
                        // Reserve a first megabyte at most: a declared length is a claim, not memory to hand out.
                        if h.contentLength > 0 { body.reserveCapacity(min(h.contentLength, 1 << 20)) }
                    case .body(var chunk):
                        body.writeBuffer(&chunk)
                    case .end:
                        break reading
                    }
                }
                switch connection.read(into: &buffer) {
                case .bytes:
                    continue
                case .closed:
                    // Between requests on a persistent connection this is keel closing it: nothing to say.
                    try parser.finish(leftover: buffer)
                    return false
                case .timedOut:
                    WorkerLog.error("uwsgi request not received within --socket-timeout \(configuration.socketTimeout)s: closed")
                    return false
                case .failed(let code):
                    if code != ECONNRESET { WorkerLog.error("uwsgi read failed: \(SystemError.message(code))") }
                    return false
                }
            }
        } catch {
            if case .httpRequestOnUWSGISocket = error {
                WorkerLog.error(error.description)
                respondWithError(connection, status: 400, "This is a uwsgi socket, not HTTP. \(error)\n")
            } else {
                WorkerLog.error("\(error) (closing the connection)")
            }
            return false
        }
        guard let head else { return false }
        let offered = head.modifier2 == KeelWire.offer
        // One request at a time on the keel wire: bytes past this packet are a second one sent before its answer.
        let pipelined = offered && buffer.readableBytes > 0
        let request = Request(vars: head.vars, body: body, bodyReader: reader)
        let scoreboard = configuration.scoreboard
        scoreboard?.board.requestStarted(
            scoreboard!.record, thread: thread, lineParts: request.requestLineParts, now: monotonicMilliseconds())
        let response = AppRunner.respond(to: request, with: configuration.handler)
        let transport = UWSGIResponseTransport(
            connection: connection, headOnly: request.method == "HEAD", frame: offered ? responder : nil,
            frameSent: frameSent)
        ResponseDelivery(transport: transport, requestLine: request.requestLine).send(response)
        // Closing with unread bytes would reset the connection and could cut the response at the client.
        let drained = reader?.drain() ?? true
        scoreboard?.board.requestFinished(scoreboard!.record, thread: thread, now: monotonicMilliseconds())
        counter.requestServed()
        if pipelined {
            WorkerLog.error(
                "the front sent \(buffer.readableBytes) bytes after a request before its answer (one request at a time "
                    + "on a persistent uwsgi connection): closed")
            return false
        }
        return transport.isReusable && drained
    }

    private func respondWithError(
        _ connection: BlockingConnection, status: Int, _ message: String, frame: KeelWire.Responder? = nil
    ) {
        var out = ByteBuffer()
        if let frame { KeelWire.writeResponseFrame(frame, into: &out) }
        HTTPResponseHeadWriter.write(
            status: status, headers: [("Content-Type", "text/plain")], contentLength: message.utf8.count, chunked: false,
            into: &out)
        out.writeString(message)
        _ = connection.writeAll(out)
    }
}
