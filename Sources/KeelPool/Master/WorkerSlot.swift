/// One worker position in the pool and its lifecycle: waiting → starting → ready → stopping → (waiting | retired).
/// A value-type state machine: the master feeds it events and performs the actions it returns.
struct WorkerSlot {
    enum State: Equatable {
        /// Not running; spawn at or after `at` (monotonic ms).
        case waiting(at: Int64)
        case starting(pid: Int32, since: Int64)
        case ready(pid: Int32, since: Int64)
        /// Told to leave (TERM sent); not respawned.
        case stopping(pid: Int32, since: Int64)
        case retired
    }

    enum ExitAction: Equatable {
        /// Spawn again at this time.
        case respawn(at: Int64, afterStartupFailure: Bool)
        /// Leave the slot empty (the pool is stopping or shrinking).
        case none
    }

    let id: Int
    /// Which reload generation the worker belongs to: HUP starts a new one and retires the older.
    var generation: Int
    private(set) var state: State = .waiting(at: 0)
    /// Deaths soon after spawning, in a row: drives the backoff.
    private(set) var quickDeaths = 0
    private(set) var spawns = 0
    var statusFD: Int32?
    /// Which scoreboard record the running worker writes (assigned at spawn).
    var scoreboardSlot: Int?
    /// Requests killed by --harakiri in this slot (for stats).
    var harakiriCount = 0
    /// When harakiri told the current worker to go: it is SIGKILLed if still there after the grace period.
    var harakiriAt: Int64?
    /// Bytes read from the status pipe that do not yet form a whole line.
    var statusPending = ""
    /// The last `error: …` line the worker reported.
    var reportedError: String?

    /// A worker that lived less than this is "dying young", and its respawn is delayed.
    static let quickDeathMilliseconds: Int64 = 1_000
    static let maxBackoffMilliseconds: Int64 = 10_000

    init(id: Int, generation: Int = 0, spawnAt: Int64 = 0) {
        self.id = id
        self.generation = generation
        self.state = .waiting(at: spawnAt)
    }

    var isLive: Bool {
        switch state {
        case .waiting, .starting, .ready: return true
        case .stopping, .retired: return false
        }
    }

    var isReady: Bool {
        if case .ready = state { return true }
        return false
    }

    var pid: Int32? {
        switch state {
        case .starting(let pid, _), .ready(let pid, _), .stopping(let pid, _): return pid
        case .waiting, .retired: return nil
        }
    }

    func isDue(now: Int64) -> Bool {
        if case .waiting(let at) = state { return at <= now }
        return false
    }

    mutating func spawned(pid: Int32, now: Int64) {
        state = .starting(pid: pid, since: now)
        spawns += 1
        statusPending = ""
        reportedError = nil
        harakiriAt = nil
    }

    mutating func becameReady(now: Int64) {
        if case .starting(let pid, let since) = state { state = .ready(pid: pid, since: since) }
    }

    mutating func stop() {
        switch state {
        case .starting(let pid, let since), .ready(let pid, let since): state = .stopping(pid: pid, since: since)
        case .waiting: state = .retired
        case .stopping, .retired: break
        }
    }

    /// posix_spawn itself failed: retry later, with the same backoff as a worker dying young.
    mutating func spawnFailed(now: Int64) -> Int64 {
        quickDeaths += 1
        let at = now + backoffDelay
        state = .waiting(at: at)
        return at
    }

    private var backoffDelay: Int64 {
        quickDeaths == 0 ? 0 : min(100 << Int64(min(quickDeaths - 1, 10)), Self.maxBackoffMilliseconds)
    }

    /// The worker process ended; what should happen to the slot. With `replace` false (the pool is
    /// stopping, or the slot belongs to a generation being replaced) the slot retires.
    /// `servedRequests`: how many requests the worker answered (from the scoreboard). A worker that
    /// served and then crashed is a crashing app, not a crash loop: it is replaced at once.
    mutating func exited(now: Int64, replace: Bool = true, servedRequests: Int64 = 0) -> ExitAction {
        switch state {
        case .stopping, .retired, .waiting:
            state = .retired
            return .none
        case .starting where !replace, .ready where !replace:
            state = .retired
            return .none
        case .starting(_, let since), .ready(_, let since):
            let failedStartup: Bool
            if case .starting = state { failedStartup = true } else { failedStartup = false }
            if failedStartup || (now - since < Self.quickDeathMilliseconds && servedRequests == 0) {
                quickDeaths += 1
            } else {
                quickDeaths = 0
            }
            let delay = backoffDelay
            state = .waiting(at: now + delay)
            return .respawn(at: now + delay, afterStartupFailure: failedStartup)
        }
    }
}

/// Milliseconds on the monotonic clock.
public func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

#if canImport(Glibc)
import Glibc
#endif
