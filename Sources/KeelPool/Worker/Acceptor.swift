import CKeelSys
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The worker's accept loop, on a thread of its own: wait for a free thread slot, wait for a
/// connection on any inherited listener, accept it, hand it to the event loop. Accepting only with a
/// free slot is what lets the kernel give new connections to idle workers. (NIO's own server channel
/// assumes it is the only acceptor of a socket; here every worker of the pool shares it.)
final class Acceptor: @unchecked Sendable {
    typealias Accepted = (fd: Int32, wire: WorkerConfiguration.Wire)

    private let listeners: [WorkerConfiguration.InheritedListener]
    private let gate: SlotGate
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let onAccepted: (Accepted) -> Void
    /// Runs on the acceptor thread once it has stopped and swept the backlog.
    var onStopped: (@Sendable () -> Void)?
    private var thread: pthread_t?

    init(
        listeners: [WorkerConfiguration.InheritedListener], gate: SlotGate,
        onAccepted: @escaping (Accepted) -> Void
    ) {
        self.listeners = listeners
        self.gate = gate
        self.onAccepted = onAccepted
        var fds: [Int32] = [-1, -1]
        pipe(&fds)
        wakeRead = fds[0]
        wakeWrite = fds[1]
        _ = fcntl(wakeRead, F_SETFD, FD_CLOEXEC)
        _ = fcntl(wakeWrite, F_SETFD, FD_CLOEXEC)
    }

    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let acceptor = Unmanaged<Acceptor>.fromOpaque(raw!).takeRetainedValue()
            acceptor.loop()
            return nil
        }, box.toOpaque())
        self.thread = thread
    }

    private var sweepOnStop = false

    /// Stops accepting for good: wakes the loop, which closes this worker's copies of the listeners
    /// (after serving what the kernel had queued when `sweep`: the whole pool is stopping).
    func stop(sweep: Bool = false) {
        sweepOnStop = sweep
        gate.drain()
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func loop() {
        var pollSet = listeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        pollSet.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
        while gate.waitForFreeSlot() {
            for index in pollSet.indices { pollSet[index].revents = 0 }
            let ready = poll(&pollSet, nfds_t(pollSet.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                WorkerLog.error("poll on the listening sockets failed: \(SystemError.message(errno)); not accepting")
                break
            }
            if pollSet[listeners.count].revents != 0 { break }
            for (index, listener) in listeners.enumerated() where pollSet[index].revents != 0 {
                // Reserve the slot before accept(): a keep-alive request may have taken the last one meanwhile.
                guard gate.tryTake() else { break }
                let fd = keel_accept4(listener.fd, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
                if fd < 0 {
                    gate.give()
                    // Another worker won the race (EAGAIN), or the client gave up already.
                    if errno == EMFILE || errno == ENFILE { AcceptBackoff.outOfDescriptors(errno) }
                    continue
                }
                onAccepted((fd, listener.proto))
                break  // re-check the free slots before the next accept
            }
        }
        // When the pool stops, connections the kernel already queued are served, not reset by the close.
        if sweepOnStop {
            BacklogSweep.acceptQueued(on: listeners, flags: Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)) {
                fd, listener in
                gate.take()
                onAccepted((fd, listener.proto))
            }
        }
        for listener in listeners { close(listener.fd) }
        onStopped?()
    }
}

/// Out of file descriptors, the listener stays readable: pause instead of spinning, and say so once a second.
enum AcceptBackoff {
    nonisolated(unsafe) private static var lastLog: Int64 = 0

    static func outOfDescriptors(_ code: Int32) {
        let now = monotonicMilliseconds()
        if now - lastLog >= 1000 {
            lastLog = now
            WorkerLog.error("accept: \(SystemError.message(code)); raise the open files limit (ulimit -n). Pausing accepts")
        }
        usleep(100_000)
    }
}

/// The final accept sweep when the pool stops, shared by the uwsgi threads and the HTTP acceptor:
/// bounded to one listen backlog's worth and two seconds, since TCP clients may keep connecting.
enum BacklogSweep {
    static let maxConnections = 1024
    static let maxMilliseconds: Int64 = 2000

    /// Accepts what is queued on `listeners`, within the bounds, and hands each connection to `serve`.
    static func acceptQueued(
        on listeners: [WorkerConfiguration.InheritedListener], flags: Int32,
        _ serve: (Int32, WorkerConfiguration.InheritedListener) -> Void
    ) {
        let deadline = monotonicMilliseconds() + maxMilliseconds
        for listener in listeners {
            for _ in 0..<maxConnections where monotonicMilliseconds() < deadline {
                let fd = keel_accept4(listener.fd, flags)
                if fd < 0 { break }
                serve(fd, listener)
            }
        }
    }
}
