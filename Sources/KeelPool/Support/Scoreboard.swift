import CKeelSys

#if canImport(Glibc)
import Glibc
#endif

/// Shared memory between the master and its workers (a memfd the master creates and every worker
/// maps): one record per worker position and one per thread, so the master can see who is busy
/// with which request since when (harakiri, stats) without asking anyone.
///
/// Layout: `capacity` worker records of `workerRecordSize` bytes, each followed by `threads` thread
/// rows. Each row has one writer at a time (a uwsgi thread owns its row; HTTP rows are written by the
/// event loop), and counters live in the rows, summed by readers, so no write needs an atomic
/// read-modify-write. Fields are aligned 8-byte words, so a reader sees whole values (a request line
/// being rewritten may read half old, which stats accept).
public final class Scoreboard: @unchecked Sendable {
    public let fd: Int32
    public let capacity: Int
    public let threads: Int
    private let base: UnsafeMutableRawPointer
    private let size: Int

    static let workerRecordSize = 64
    static let threadRecordSize = 32 + 256
    static let requestLineBytes = 256

    // Worker record: byte offsets.
    private static let pidOffset = 0
    private static let acceptedOffset = 8
    private static let stateOffset = 16
    private static let persistentOffset = 24
    private static let heartbeatOffset = 32
    private static let generationOffset = 40
    private static let rssOffset = 48
    // Thread row: byte offsets.
    private static let startOffset = 0
    private static let lineLengthOffset = 8
    private static let requestsOffset = 16
    private static let busyMicrosOffset = 24
    private static let lineOffset = 32

    public enum WorkerState: Int64, Sendable {
        case idle = 0
        case busy = 1
        case draining = 2
    }

    private var recordSize: Int { Self.workerRecordSize + threads * Self.threadRecordSize }

    /// The master's side: a new memfd sized for `capacity` workers of `threads` threads, kept above
    /// fd `floor` so that no dup2 onto a worker's low fds can overwrite it during a spawn.
    public static func create(capacity: Int, threads: Int, above floor: Int32) throws(PoolError) -> Scoreboard {
        let created = keel_memfd_create("keel-pool-scoreboard", 1)  // 1 = MFD_CLOEXEC (hidden by Glibc)
        guard created >= 0 else { throw .errno("cannot create the scoreboard (memfd_create)", errno) }
        let fd = moveAbove(created, floor)
        let size = capacity * (workerRecordSize + threads * threadRecordSize)
        guard ftruncate(fd, off_t(size)) == 0 else {
            let code = errno
            close(fd)
            throw .errno("cannot size the scoreboard to \(size) bytes", code)
        }
        return try map(fd: fd, capacity: capacity, threads: threads)
    }

    /// A worker's side: maps the inherited memfd.
    public static func map(fd: Int32, capacity: Int, threads: Int) throws(PoolError) -> Scoreboard {
        let size = capacity * (workerRecordSize + threads * threadRecordSize)
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            throw .errno("cannot map the scoreboard", errno)
        }
        return Scoreboard(fd: fd, capacity: capacity, threads: threads, base: base, size: size)
    }

    private init(fd: Int32, capacity: Int, threads: Int, base: UnsafeMutableRawPointer, size: Int) {
        self.fd = fd
        self.capacity = capacity
        self.threads = threads
        self.base = base
        self.size = size
    }

    deinit { munmap(base, size) }

    private func worker(_ index: Int) -> UnsafeMutableRawPointer { base + index * recordSize }
    private func thread(_ index: Int, _ thread: Int) -> UnsafeMutableRawPointer {
        worker(index) + Self.workerRecordSize + thread * Self.threadRecordSize
    }

    private func load(_ pointer: UnsafeMutableRawPointer) -> Int64 {
        pointer.assumingMemoryBound(to: Int64.self).pointee
    }
    private func store(_ pointer: UnsafeMutableRawPointer, _ value: Int64) {
        pointer.assumingMemoryBound(to: Int64.self).pointee = value
    }

    // MARK: master

    /// Clears a record for a worker about to be spawned into it.
    public func reset(_ index: Int) {
        memset(worker(index), 0, recordSize)
    }

    public func setPID(_ index: Int, _ pid: Int32) { store(worker(index) + Self.pidOffset, Int64(pid)) }
    public func pid(_ index: Int) -> Int32 { Int32(truncatingIfNeeded: load(worker(index) + Self.pidOffset)) }
    public func setGeneration(_ index: Int, _ generation: Int) {
        store(worker(index) + Self.generationOffset, Int64(generation))
    }
    /// Resident memory in bytes, written by the master's once-a-second health check.
    /// Connections the worker's uwsgi threads accepted in all, and persistent (keel-wire) ones open now.
    public func setConnections(_ index: Int, accepted: Int64, persistent: Int64) {
        store(worker(index) + Self.acceptedOffset, accepted)
        store(worker(index) + Self.persistentOffset, persistent)
    }
    /// Workers serving now (a pid, not draining): what a keel-wire frame tells keel about the pool.
    public func servingWorkers() -> Int {
        var count = 0
        for index in 0..<capacity {
            let record = worker(index)
            if load(record + Self.pidOffset) != 0 && load(record + Self.stateOffset) != WorkerState.draining.rawValue {
                count += 1
            }
        }
        return count
    }

    public func setRSS(_ index: Int, bytes: Int) { store(worker(index) + Self.rssOffset, Int64(bytes)) }

    // MARK: workers

    /// A thread of worker record `index` starts a request; the request line ("GET /x HTTP/1.1") is
    /// written from its parts straight into shared memory, with no String built on the hot path.
    public func requestStarted(_ index: Int, thread slot: Int, lineParts parts: [String], now: Int64) {
        let record = thread(index, slot % threads)
        var length = 0
        for (number, part) in parts.enumerated() {
            if number > 0 && length < Self.requestLineBytes {
                (record + Self.lineOffset + length).storeBytes(of: UInt8(ascii: " "), as: UInt8.self)
                length += 1
            }
            var part = part
            part.withUTF8 { bytes in
                let count = min(bytes.count, Self.requestLineBytes - length)
                if count > 0 { (record + Self.lineOffset + length).copyMemory(from: bytes.baseAddress!, byteCount: count) }
                length += count
            }
        }
        store(record + Self.lineLengthOffset, Int64(length))
        store(record + Self.startOffset, now)
    }

    public func requestStarted(_ index: Int, thread slot: Int, line: String, now: Int64) {
        requestStarted(index, thread: slot, lineParts: [line], now: now)
    }

    /// The request of that thread is answered.
    public func requestFinished(_ index: Int, thread slot: Int, now: Int64) {
        let record = thread(index, slot % threads)
        let started = load(record + Self.startOffset)
        store(record + Self.startOffset, 0)
        store(record + Self.requestsOffset, load(record + Self.requestsOffset) + 1)
        if started > 0 {
            store(record + Self.busyMicrosOffset, load(record + Self.busyMicrosOffset) + (now - started) * 1000)
        }
    }

    public func setState(_ index: Int, _ state: WorkerState) { store(worker(index) + Self.stateOffset, state.rawValue) }

    /// The worker's main thread is alive (written every second).
    public func heartbeat(_ index: Int, now: Int64) { store(worker(index) + Self.heartbeatOffset, now) }

    // MARK: readers

    public struct ThreadView: Sendable {
        public var startedAt: Int64?  // monotonic ms, nil when idle
        public var requestLine: String
    }

    public struct WorkerView: Sendable {
        public var pid: Int32
        public var requests: Int64
        public var state: WorkerState
        /// Total time spent answering requests, microseconds (for the average response time).
        public var busyMicros: Int64
        /// Monotonic ms of the last heartbeat (0 = none yet).
        public var heartbeat: Int64
        public var generation: Int64
        /// Resident memory in bytes at the master's last check (0 = not measured yet).
        public var rss: Int64
        /// uwsgi connections accepted since the worker started.
        public var accepted: Int64
        /// Persistent (keel-wire) uwsgi connections open now.
        public var persistent: Int64
        public var threads: [ThreadView]
    }

    /// Rows of worker record `index` with a request running, without building the request lines (the master's tick).
    public func busyRows(_ index: Int) -> Int {
        (0..<threads).reduce(0) { $0 + (load(thread(index, $1) + Self.startOffset) > 0 ? 1 : 0) }
    }

    public func read(_ index: Int) -> WorkerView {
        let record = worker(index)
        var requests: Int64 = 0
        var busyMicros: Int64 = 0
        let threadViews = (0..<threads).map { slot -> ThreadView in
            let t = thread(index, slot)
            let start = load(t + Self.startOffset)
            requests += load(t + Self.requestsOffset)
            busyMicros += load(t + Self.busyMicrosOffset)
            let length = max(0, min(Int(load(t + Self.lineLengthOffset)), Self.requestLineBytes))
            let line = start > 0
                ? String(decoding: UnsafeRawBufferPointer(start: t + Self.lineOffset, count: length), as: UTF8.self) : ""
            return ThreadView(startedAt: start > 0 ? start : nil, requestLine: line)
        }
        return WorkerView(
            pid: Int32(truncatingIfNeeded: load(record + Self.pidOffset)),
            requests: requests,
            state: WorkerState(rawValue: load(record + Self.stateOffset)) ?? .idle,
            busyMicros: busyMicros,
            heartbeat: load(record + Self.heartbeatOffset),
            generation: load(record + Self.generationOffset),
            rss: load(record + Self.rssOffset),
            accepted: load(record + Self.acceptedOffset),
            persistent: load(record + Self.persistentOffset),
            threads: threadViews)
    }
}
