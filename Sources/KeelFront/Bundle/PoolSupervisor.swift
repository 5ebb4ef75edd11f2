import Dispatch
import KeelSystem
import NIOConcurrencyHelpers
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The bundle: keel starts each `[[pool]]` keel-pool before it accepts, restarts one that dies (with backoff when it
/// dies young, so a broken pool cannot fork-bomb), and stops them after its own drain. Reaping is done here for every
/// child, so keel as PID 1 in a container leaves no zombies.
public final class PoolSupervisor: Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    private struct Running {
        var pool: FrontConfiguration.Pool
        var pid: pid_t?
        var startedAt: MonotonicSeconds
        var restartAt: MonotonicSeconds?
        var backoff: Double = 1
    }

    private let executable: String
    /// `["pool"]` when keel runs the pool from its own binary (`keel pool …`).
    private let prefix: [String]
    private let state: NIOLockedValueBox<(pools: [Running], stopping: Bool)>

    public init(pools: [FrontConfiguration.Pool], command: (executable: String, prefix: [String]) = PoolSupervisor.defaultCommand()) {
        self.executable = command.executable
        self.prefix = command.prefix
        self.state = NIOLockedValueBox((pools.map { Running(pool: $0, pid: nil, startedAt: .now) }, false))
    }

    public var isEmpty: Bool { state.withLockedValue { $0.pools.isEmpty } }

    /// `$KEEL_POOL`, else the keel-pool next to this keel binary, else this keel binary itself as `keel pool …`.
    public static func defaultCommand() -> (executable: String, prefix: [String]) {
        if let override = getenv("KEEL_POOL") { return (String(cString: override), []) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return ("keel-pool", []) }
        let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let slash = path.lastIndex(of: "/") {
            let sibling = String(path[...slash]) + "keel-pool"
            if access(sibling, X_OK) == 0 { return (sibling, []) }
        }
        return (path, ["pool"])
    }

    /// Spawns every pool and waits until each one's socket accepts connections; a pool that exits first, or is not
    /// ready within `timeout` seconds, fails the start (its own error is on stderr above).
    public func start(timeout: Double = 30) async throws {
        let count = state.withLockedValue { $0.pools.count }
        for index in 0..<count { try spawn(index) }
        let deadline = MonotonicSeconds.now + timeout
        for index in 0..<count {
            let pool = state.withLockedValue { $0.pools[index].pool }
            while true {
                if let socket = pool.socket, Self.canConnect(socket) { break }
                if let exit = reapOne(index) {
                    throw StartError(description: "pool \"\(pool.name)\" exited during startup (\(exit)); fix its flags: keel-pool \(pool.args.joined(separator: " "))")
                }
                if MonotonicSeconds.now > deadline {
                    throw StartError(description: "pool \"\(pool.name)\" did not accept connections on \(pool.socket?.description ?? "?") within \(Int(timeout))s")
                }
                try await Task.sleep(nanoseconds: 20_000_000)
            }
            FrontLog.notice("pool \"\(pool.name)\" ready on \(pool.socket?.description ?? "?") (pid \(state.withLockedValue { $0.pools[index].pid ?? 0 }))")
        }
    }

    /// Reaps every exited child and restarts pools that died; called on a short tick.
    public func tick() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            handleExit(pid: pid, status: status)
        }
        let due: [Int] = state.withLockedValue { state in
            guard !state.stopping else { return [] }
            return state.pools.indices.filter { index in
                guard state.pools[index].pid == nil, let at = state.pools[index].restartAt else { return false }
                return at <= .now
            }
        }
        for index in due {
            do {
                try spawn(index)
            } catch {
                FrontLog.error("\(error)")
                state.withLockedValue { $0.pools[index].restartAt = .now + 5 }
            }
        }
    }

    /// TERM to every pool (graceful: they finish their requests), then KILL what is left after `grace` seconds.
    public func stop(grace: Double) async {
        let pids: [pid_t] = state.withLockedValue { state in
            state.stopping = true
            return state.pools.compactMap(\.pid)
        }
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = MonotonicSeconds.now + grace
        while MonotonicSeconds.now < deadline {
            tick()
            if state.withLockedValue({ $0.pools.allSatisfy { $0.pid == nil } }) { return }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        for pid in state.withLockedValue({ $0.pools.compactMap(\.pid) }) {
            FrontLog.warning("pool pid \(pid) still running after \(Int(grace))s: killed")
            kill(pid, SIGKILL)
        }
        tick()
    }

    public var pids: [pid_t] { state.withLockedValue { $0.pools.compactMap(\.pid) } }

    private func spawn(_ index: Int) throws {
        let pool = state.withLockedValue { $0.pools[index].pool }
        let pid = try Self.spawnProcess(executable, arguments: prefix + pool.args)
        state.withLockedValue { state in
            state.pools[index].pid = pid
            state.pools[index].startedAt = .now
            state.pools[index].restartAt = nil
        }
        FrontLog.notice("started pool \"\(pool.name)\" (pid \(pid)): \(([executable] + prefix + pool.args).joined(separator: " "))")
    }

    /// During startup: has pool `index` exited? Returns its exit description.
    private func reapOne(_ index: Int) -> String? {
        guard let pid = state.withLockedValue({ $0.pools[index].pid }) else { return "not running" }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        state.withLockedValue { $0.pools[index].pid = nil }
        return Self.describe(status)
    }

    private func handleExit(pid: pid_t, status: Int32) {
        let restart: (name: String, delay: Double)? = state.withLockedValue { state in
            guard let index = state.pools.firstIndex(where: { $0.pid == pid }) else { return nil }
            state.pools[index].pid = nil
            if state.stopping { return nil }
            let lived = MonotonicSeconds.now - state.pools[index].startedAt
            // A pool that ran a while is restarted at once; one that keeps dying young waits longer each time.
            let delay = lived > 10 ? 0 : state.pools[index].backoff
            state.pools[index].backoff = lived > 10 ? 1 : min(state.pools[index].backoff * 2, 30)
            state.pools[index].restartAt = .now + delay
            return (state.pools[index].pool.name, delay)
        }
        guard let restart else { return }
        FrontLog.error("pool \"\(restart.name)\" (pid \(pid)) \(Self.describe(status)): restarting\(restart.delay > 0 ? " in \(Int(restart.delay))s" : "")")
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7F
        if signal == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        return "was killed by signal \(signal)"
    }

    /// Pools are spawned from one thread that lives as long as keel: the pool's PR_SET_PDEATHSIG (ParentTie) fires
    /// when the *thread* that spawned it ends, and Swift's tasks run on threads that come and go.
    private static let spawnerThread: NIOThreadPool = {
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        return thread
    }()

    /// stdio inherited, fds ≥ 3 closed, the signals keel traps reset to default, and tied to keel (KEEL_PARENT_PID).
    static func spawnProcess(_ executable: String, arguments: [String]) throws -> pid_t {
        let outcome = NIOLockedValueBox<Result<pid_t, ProcessSpawner.SpawnError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        spawnerThread.submit { _ in
            do throws(ProcessSpawner.SpawnError) {
                let pid = try ProcessSpawner.spawn(
                    executable, arguments: arguments, closeFrom: 3,
                    defaultSignals: [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGTTIN, SIGTTOU, SIGCHLD],
                    searchPath: true, extraEnvironment: [ParentTie.environmentEntry])
                outcome.withLockedValue { $0 = .success(pid) }
            } catch {
                outcome.withLockedValue { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        switch outcome.withLockedValue({ $0 }) {
        case .success(let pid): return pid
        case .failure(let error):
            throw StartError(description: "\(error) (build it with `swift build`, or set KEEL_POOL to its path)")
        case nil: throw StartError(description: "cannot spawn \(executable): keel's spawner thread is not running")
        }
    }

    /// Whether something accepts connections at `address` now (a blocking loopback connect; startup only).
    static func canConnect(_ address: FrontConfiguration.ServerAddress) -> Bool {
        switch address {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, byte) in bytes.enumerated() { raw[i] = byte }
            }
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
            }
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return false }
            defer { freeaddrinfo(result) }
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
        }
    }
}

/// Monotonic seconds, enough for backoff arithmetic without NIO's TimeAmount in this non-NIO code.
struct MonotonicSeconds: Comparable, Sendable {
    var value: Double

    static var now: MonotonicSeconds {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return MonotonicSeconds(value: Double(time.tv_sec) + Double(time.tv_nsec) / 1e9)
    }

    static func + (lhs: MonotonicSeconds, rhs: Double) -> MonotonicSeconds { MonotonicSeconds(value: lhs.value + rhs) }
    static func - (lhs: MonotonicSeconds, rhs: MonotonicSeconds) -> Double { lhs.value - rhs.value }
    static func < (lhs: MonotonicSeconds, rhs: MonotonicSeconds) -> Bool { lhs.value < rhs.value }
}
