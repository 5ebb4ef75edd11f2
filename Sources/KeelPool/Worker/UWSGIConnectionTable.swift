import CKeelSys
import Synchronization
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// What a uwsgi worker's threads wait on, and the persistent (keel-wire) connections it holds between requests.
///
/// One epoll set per worker holds the listeners (`EPOLLEXCLUSIVE`, so a new connection wakes one worker that has a
/// thread waiting, not all), the wake pipe, and every idle persistent connection (`EPOLLONESHOT`, so exactly one
/// thread takes its next request). Only a free thread waits, so an idle connection holds no thread and at most T
/// requests run at once. The table decides, under one small lock, who owns a connection when a drain and an
/// arriving request race: a thread that claims it serves that request; `closeIdle` says goodbye to the rest.
final class UWSGIConnectionTable: @unchecked Sendable {
    /// What an epoll event stands for.
    enum Tag: Equatable {
        case listener(Int)
        case wake
        case connection(fd: Int32, generation: UInt32)

        var rawValue: UInt64 {
            switch self {
            case .listener(let index): 1 << 63 | UInt64(index)
            case .wake: 1 << 62
            case .connection(let fd, let generation): UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
            }
        }

        init(rawValue: UInt64) {
            if rawValue & (1 << 63) != 0 {
                self = .listener(Int(rawValue & 0xFFFF_FFFF))
            } else if rawValue & (1 << 62) != 0 {
                self = .wake
            } else {
                self = .connection(
                    fd: Int32(bitPattern: UInt32(rawValue & 0xFFFF_FFFF)), generation: UInt32(rawValue >> 32))
            }
        }
    }

    private struct Entry {
        var generation: UInt32
        var idle = false
        /// Added to the epoll set (after its first request): later parks re-arm it.
        var registered = false
    }

    private struct State {
        var entries: [Int32: Entry] = [:]
        var nextGeneration: UInt32 = 1
        var draining = false
        var accepted: Int64 = 0
        var persistent: Int64 = 0
        /// Connections that said goodbye, half-closed and kept open until the worker exits (see `sayGoodbye`).
        var lingering: [Int32] = []
    }

    let epollFD: Int32
    private let state = Mutex(State())
    private let report: (_ accepted: Int64, _ persistent: Int64) -> Void

    /// `report` gets the counts for the scoreboard; it is called under the lock, so its stores never go backwards.
    init(report: @escaping (_ accepted: Int64, _ persistent: Int64) -> Void = { _, _ in }) throws(PoolError) {
        epollFD = keel_epoll_create()
        guard epollFD >= 0 else { throw .errno("cannot create the worker's epoll set", errno) }
        self.report = report
    }

    deinit { close(epollFD) }

    func watchListener(fd: Int32, index: Int) throws(PoolError) {
        guard keel_epoll_ctl(epollFD, keel_epoll_ctl_add, fd, keel_epollin | keel_epollexclusive, Tag.listener(index).rawValue) == 0 else {
            throw .errno("cannot watch the uwsgi socket (epoll_ctl)", errno)
        }
    }

    /// A leaving worker stops competing for new connections: with `EPOLLEXCLUSIVE` the kernel wakes one worker per
    /// connection, and a draining one that took the wake-up and left would strand it in the listen queue.
    func unwatchListener(fd: Int32) {
        _ = keel_epoll_ctl(epollFD, keel_epoll_ctl_del, fd, 0, 0)
    }

    /// A level-triggered fd never read: once it is readable every waiting thread wakes, and keeps waking.
    func watchWake(fd: Int32) throws(PoolError) {
        guard keel_epoll_ctl(epollFD, keel_epoll_ctl_add, fd, keel_epollin, Tag.wake.rawValue) == 0 else {
            throw .errno("cannot watch the wake pipe (epoll_ctl)", errno)
        }
    }

    /// Waits for the next thing to do; nil on EINTR.
    func wait() -> Tag? {
        var raw: UInt64 = 0
        let count = keel_epoll_wait_one(epollFD, &raw, -1)
        return count == 1 ? Tag(rawValue: raw) : nil
    }

    /// A connection was accepted and is being served by the calling thread.
    func opened(_ fd: Int32) -> UInt32 {
        state.withLock { state in
            let generation = state.nextGeneration
            state.nextGeneration = generation == UInt32.max ? 1 : generation + 1
            state.entries[fd] = Entry(generation: generation)
            state.accepted += 1
            report(state.accepted, state.persistent)
            return generation
        }
    }

    /// The calling thread finished a request and the connection persists: it goes back to waiting in the epoll set.
    /// false while draining: the caller says goodbye and closes instead (a request boundary).
    func park(_ fd: Int32, generation: UInt32) -> Bool {
        state.withLock { state in
            guard !state.draining, var entry = state.entries[fd], entry.generation == generation else { return false }
            // Armed under the lock: once the fd is closed, its number may be reused by another accept.
            let op = entry.registered ? keel_epoll_ctl_mod : keel_epoll_ctl_add
            let events = keel_epollin | keel_epolloneshot | keel_epollrdhup
            guard keel_epoll_ctl(epollFD, op, fd, events, Tag.connection(fd: fd, generation: generation).rawValue) == 0 else {
                return false
            }
            if !entry.registered {
                entry.registered = true
                state.persistent += 1
                report(state.accepted, state.persistent)
            }
            entry.idle = true
            state.entries[fd] = entry
            return true
        }
    }

    /// A parked connection became readable: true if the calling thread now owns it (false when `closeIdle` took it
    /// first, or the event is stale).
    func claim(_ fd: Int32, generation: UInt32) -> Bool {
        state.withLock { state in
            guard var entry = state.entries[fd], entry.generation == generation, entry.idle else { return false }
            entry.idle = false
            state.entries[fd] = entry
            return true
        }
    }

    /// The owner is about to close the connection.
    func forget(_ fd: Int32) {
        state.withLock { state in
            if let entry = state.entries.removeValue(forKey: fd), entry.registered {
                state.persistent -= 1
                report(state.accepted, state.persistent)
            }
        }
    }

    /// The worker leaves: no connection is parked from now on, and each idle one gets a goodbye and is closed.
    /// A request keel sent on one meanwhile stays unread, which the goodbye tells it.
    func closeIdle() {
        let idle: [Int32] = state.withLock { state in
            state.draining = true
            let idle = state.entries.filter { $0.value.idle }.map(\.key)
            for fd in idle { state.entries[fd] = nil }
            state.persistent -= Int64(idle.count)
            report(state.accepted, state.persistent)
            return idle
        }
        for fd in idle { sayGoodbye(fd) }
    }

    var isDraining: Bool { state.withLock { $0.draining } }

    /// Before the worker exits: waits (at most `milliseconds`) for keel to close the connections that said goodbye,
    /// reading and dropping what it sent meanwhile. Exiting at once would reset a socket keel may be writing a request
    /// to, and keel would see the reset before the goodbye that says the request may go elsewhere.
    func awaitGoodbyesRead(milliseconds: Int) {
        var open = state.withLock { state in
            defer { state.lingering = [] }
            return state.lingering
        }
        let deadline = monotonicMilliseconds() + Int64(milliseconds)
        var scratch = [UInt8](repeating: 0, count: 4096)
        while !open.isEmpty {
            let left = deadline - monotonicMilliseconds()
            guard left > 0 else { break }
            var pollSet = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&pollSet, nfds_t(pollSet.count), Int32(min(left, 100))) >= 0 || errno == EINTR else { break }
            var stillOpen: [Int32] = []
            for entry in pollSet {
                guard entry.revents != 0 else {
                    stillOpen.append(entry.fd)
                    continue
                }
                let received = recv(entry.fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
                if received > 0 || (received < 0 && (errno == EAGAIN || errno == EINTR)) {
                    stillOpen.append(entry.fd)  // an unread request keel will send elsewhere: dropped
                } else {
                    close(entry.fd)  // keel closed its side (or the socket failed)
                }
            }
            open = stillOpen
        }
        for fd in open { close(fd) }
    }

    /// Tells keel that nothing after the last response was read (the 4 bytes fit any socket buffer), then shuts the
    /// sending side only. The socket stays open until the worker exits, so a request keel sends meanwhile still lands
    /// (unread) instead of failing with EPIPE before keel has read the goodbye that says it may go elsewhere.
    func sayGoodbye(_ fd: Int32) {
        KeelWire.goodbyeBytes.withUnsafeBytes { raw in _ = send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        shutdown(fd, Int32(SHUT_WR))
        state.withLock { $0.lingering.append(fd) }
    }
}
