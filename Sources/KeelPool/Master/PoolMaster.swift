#if canImport(Glibc)
import KeelSystem
import Glibc
#endif

/// The master process: binds the sockets, spawns and supervises the workers, and turns signals into
/// pool actions. It has no event loop and runs no app code: one thread waiting on signals with a tick.
public final class PoolMaster {
    /// Startup failures in a row (no worker reaching "ready" in between) that end the master.
    public static let maxStartupFailures = 5
    /// How often the master wakes without a signal: status pipes, due respawns, shutdown deadline.
    static let tickMilliseconds = 100
    /// How long a worker told to exit by harakiri has before it is SIGKILLed.
    static let harakiriGraceMilliseconds: Int64 = 3000

    enum Phase {
        case running
        case stopping(deadline: Int64, graceful: Bool)
    }

    let configuration: PoolConfiguration
    var sockets: [ListenSocket] = []
    var slots: [WorkerSlot] = []
    var spawner: WorkerSpawner!
    var scoreboard: Scoreboard!
    var statsServer: StatsServer?
    var metricsServer: MetricsServer?
    var metrics: PoolMetrics?
    /// `--cheaper`'s decisions (nil: the pool keeps `targetProcesses`).
    var cheaper: CheaperStateMachine?
    /// The last workers that left or were replaced, oldest first (stats' `recent_recycles`).
    var recentDepartures: [WorkerDeparture] = []
    var phase = Phase.running
    var startupFailuresInARow = 0
    /// The file stamps --py-autoreload already reloaded for ("PATH MTIME_NS SIZE").
    var autoreloadSeen: Set<String> = []
    var exitCode: Int32 = 0
    /// The current reload generation; HUP increments it.
    var generation = 0
    /// How many workers the pool keeps (`--processes`, changed by TTIN/TTOU).
    var targetProcesses: Int
    /// Spawns per worker id beyond its first: survives recycling, which replaces the slot itself.
    var respawnsByID: [Int: Int] = [:]
    var spawnedIDs: Set<Int> = []

    public init(configuration: PoolConfiguration) {
        self.configuration = configuration
        self.targetProcesses = configuration.cheaper?.initial ?? configuration.processes
        self.cheaper = configuration.cheaper.map { CheaperStateMachine(policy: $0, now: monotonicMilliseconds()) }
    }

    /// Binds, spawns and supervises until the pool is stopped; returns the process exit code.
    public func run() -> Int32 {
        SignalSet.masterSignals.block()
        do {
            if let path = configuration.logTo { try LogFile.redirect(to: path) }
            try bindSockets()
            // Room for every worker twice over: a reload or a recycle briefly runs old and new side by side.
            // A row per thread and per protocol: uwsgi threads and HTTP app threads are counted apart. An async
            // worker's one scheduler serves both protocols from one set of --worker-connections rows.
            let protocols = configuration.isAsync
                ? 1 : (configuration.uwsgiSockets.isEmpty ? 0 : 1) + (configuration.httpSockets.isEmpty ? 0 : 1)
            scoreboard = try Scoreboard.create(
                capacity: max(64, configuration.processes * 4), threads: configuration.threads * protocols,
                above: Int32(3 + sockets.count + 1))
            if let address = configuration.stats {
                statsServer = try StatsServer(address: address)
                MasterLog.info("stats server listening on \(address)")
            }
            if let address = configuration.metrics {
                metricsServer = try MetricsServer(address: address)
                metrics = PoolMetrics()
                MasterLog.info("metrics: http://\(address)/metrics")
            }
            try writePidfile()
        } catch {
            MasterLog.error(error.description)
            cleanup()
            return 1
        }
        spawner = WorkerSpawner(
            executable: configuration.workerExecutable ?? currentExecutablePath(),
            // Re-running this executable (`keel-pool _worker`, or `keel pool _worker` in the single binary).
            baseArguments: (configuration.workerExecutable == nil ? SelfInvocation.prefix : []) + configuration.workerArguments,
            listeners: sockets.map { ($0.fd, $0.wire) }, scoreboard: scoreboard)
        MasterLog.info(
            "keel-pool starting: app \(configuration.appName), \(configuration.processes) processes × "
                + "\(configuration.threads) \(configuration.isAsync ? "worker-connections" : "threads"), master pid \(getpid())"
                + (configuration.pythonHost.map { ", Python: \($0)" } ?? ""))
        if let policy = configuration.cheaper {
            MasterLog.info(
                "cheaper (\(policy.algorithm.rawValue)): \(policy.initial) workers to start, between \(policy.minimum) and "
                    + "\(policy.maximum), deciding every \(policy.periodSeconds) s")
        }
        slots = (1...targetProcesses).map { WorkerSlot(id: $0) }

        var lastHealthCheck: Int64 = 0
        while true {
            let now = monotonicMilliseconds()
            spawnDueWorkers(now: now)
            readStatusPipes(now: now)
            killStuckRequests(now: now)
            tickCheaper(now: now)
            statsServer?.serve { statsDocument(now: now) }
            metricsServer?.serve(now: now) { metricsExposition() }
            if now - lastHealthCheck >= 1000 {
                lastHealthCheck = now
                recycleAgedOrBloatedWorkers(now: now)
            }
            slots.removeAll { $0.state == .retired }
            if case .stopping(let deadline, let graceful) = phase {
                if slots.allSatisfy({ $0.pid == nil }) { break }
                if now >= deadline {
                    if graceful {
                        MasterLog.warning(
                            "workers still busy after --graceful-timeout \(configuration.gracefulTimeout)s: killing them")
                    }
                    killAll(SIGKILL)
                    phase = .stopping(deadline: Int64.max, graceful: false)
                }
            }
            guard let signal = SignalSet.masterSignals.wait(timeoutMilliseconds: Self.tickMilliseconds) else {
                continue
            }
            handle(signal: signal)
        }
        cleanup()
        MasterLog.info("keel-pool stopped")
        return exitCode
    }

    private func handle(signal: Int32) {
        switch signal {
        case SIGCHLD:
            reapWorkers()
        case SIGTERM:
            MasterLog.info("TERM: graceful shutdown, in-flight requests get up to \(configuration.gracefulTimeout)s")
            beginStopping(graceful: true)
        case SIGINT, SIGQUIT:
            MasterLog.info("\(signal == SIGINT ? "INT" : "QUIT"): immediate shutdown")
            beginStopping(graceful: false)
        case SIGHUP:
            reload()
        case SIGUSR1:
            guard let path = configuration.logTo else {
                MasterLog.info("USR1: no --logto file to reopen (logs go to the inherited stderr)")
                return
            }
            LogFile.reopen(path) { MasterLog.error($0) }
            MasterLog.info("USR1: reopened \(path)")
            killAll(WorkerSignal.reopenLogs)
        case SIGTTIN:
            guard case .running = phase else { return }
            guard cheaper == nil else {
                MasterLog.warning("TTIN ignored: --cheaper decides the number of workers (\(targetProcesses) now)")
                return
            }
            guard targetProcesses < scoreboard.capacity / 2 else {
                MasterLog.warning(
                    "TTIN: already \(targetProcesses) workers, the most this pool's scoreboard holds; "
                        + "restart with a higher --processes to grow further")
                return
            }
            targetProcesses += 1
            let id = (slots.filter { $0.generation == generation && $0.isLive }.map(\.id).max() ?? 0) + 1
            slots.append(WorkerSlot(id: id, generation: generation))
            MasterLog.info("TTIN: one more worker, now \(targetProcesses)")
        case SIGTTOU:
            guard case .running = phase else { return }
            guard cheaper == nil else {
                MasterLog.warning("TTOU ignored: --cheaper decides the number of workers (\(targetProcesses) now)")
                return
            }
            guard targetProcesses > 1 else {
                MasterLog.warning("TTOU: already at 1 worker; ignored")
                return
            }
            targetProcesses -= 1
            let candidates = slots.indices.filter { slots[$0].generation == generation && slots[$0].isLive }
            if let index = candidates.max(by: { slots[$0].id < slots[$1].id }) {
                stopSlot(index, reason: "TTOU: one worker fewer, now \(targetProcesses)")
            }
        default:
            break
        }
    }

    // MARK: sockets and pidfile

    private func bindSockets() throws(PoolError) {
        if let max = systemMaxBacklog(), configuration.backlog > max {
            MasterLog.warning(
                "--listen \(configuration.backlog) is above net.core.somaxconn (\(max)); the kernel will use \(max). "
                    + "Raise it with: sysctl -w net.core.somaxconn=\(configuration.backlog)")
        }
        let wanted =
            configuration.uwsgiSockets.map { ($0, WorkerConfiguration.Wire.uwsgi, "--socket") }
            + configuration.httpSockets.map { ($0, WorkerConfiguration.Wire.http, "--http-socket") }
        for (index, (address, wire, flag)) in wanted.enumerated() {
            if let fd = configuration.inheritedFDs.indices.contains(index) ? configuration.inheritedFDs[index] : nil {
                sockets.append(ListenSocket.adopt(fd: fd, address: address, wire: wire))
                MasterLog.info("\(wire == .http ? "HTTP" : "uwsgi") socket on \(address) inherited from systemd (fd \(fd))")
                continue
            }
            let socket = try ListenSocket.bind(
                address, wire: wire, backlog: configuration.backlog, chmod: configuration.chmodSocket, flag: flag)
            if case .unix(let path) = address, let owner = configuration.chownSocket {
                guard chown(path, owner.uid ?? uid_t.max, owner.gid ?? gid_t.max) == 0 else {
                    throw .errno("--chown-socket: cannot change the owner of \(path)", errno)
                }
            }
            sockets.append(socket)
            let shown: String
            if case .tcp(let host, _) = address, let port = socket.boundPort {
                shown = wire == .http ? "http://\(ListenAddress.tcp(host: host, port: port))/" : "\(host):\(port)"
            } else {
                shown = address.description
            }
            MasterLog.info("\(wire == .http ? "HTTP" : "uwsgi") socket listening on \(shown) (backlog \(configuration.backlog))")
        }
        // Keep the master's copies above the fds the workers receive (3…, then the status pipe).
        let highest = Int32(3 + sockets.count)
        for socket in sockets { _ = socket.relocate { moveAbove($0, highest) } }
    }

    private func writePidfile() throws(PoolError) {
        guard let path = configuration.pidfile else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .errno("--pidfile \(path): cannot write", errno) }
        writeAll(fd, "\(getpid())\n")
        close(fd)
    }

    private func cleanup() {
        statsServer?.close()
        metricsServer?.close()
        for socket in sockets { socket.close() }
        sockets.removeAll()
        if let path = configuration.pidfile { unlink(path) }
        for index in slots.indices {
            if let fd = slots[index].statusFD { close(fd) }
            slots[index].statusFD = nil
        }
    }

    // MARK: workers

    private func spawnDueWorkers(now: Int64) {
        guard case .running = phase else { return }
        for index in slots.indices where slots[index].isDue(now: now) {
            let inUse = Set(slots.compactMap(\.scoreboardSlot))
            guard let record = (0..<scoreboard.capacity).first(where: { !inUse.contains($0) }) else {
                MasterLog.error("no free scoreboard record for worker \(slots[index].id); will retry")
                continue
            }
            do {
                scoreboard.reset(record)
                let spawned = try spawner.spawn(workerID: slots[index].id, scoreboardSlot: record)
                scoreboard.setPID(record, spawned.pid)
                scoreboard.setGeneration(record, slots[index].generation)
                let id = slots[index].id
                if !spawnedIDs.insert(id).inserted { respawnsByID[id, default: 0] += 1 }
                slots[index].spawned(pid: spawned.pid, now: now)
                slots[index].scoreboardSlot = record
                slots[index].statusFD = spawned.statusFD
                MasterLog.info("spawned worker \(slots[index].id) (pid \(spawned.pid))")
            } catch {
                let at = slots[index].spawnFailed(now: now)
                MasterLog.error("\(error.description); retrying in \(at - now) ms")
                recordStartupFailure(error.description)
            }
        }
    }

    /// Reads what workers wrote on their status pipes: `ready`, `recycle` (it reached --max-requests
    /// and is draining itself) or `error: …` (its startup failed), one per line.
    private func readStatusPipes(now: Int64) {
        for index in slots.indices {
            guard let fd = slots[index].statusFD else { continue }
            var buffer = [UInt8](repeating: 0, count: 1024)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count > 0 {
                    slots[index].statusPending += String(decoding: buffer[..<count], as: UTF8.self)
                    continue
                }
                if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    close(fd)
                    slots[index].statusFD = nil
                }
                break
            }
            while let newline = slots[index].statusPending.firstIndex(of: "\n") {
                let line = String(slots[index].statusPending[..<newline])
                slots[index].statusPending.removeSubrange(...newline)
                handleStatus(line, slot: index, now: now)
            }
        }
    }

    private func handleStatus(_ line: String, slot index: Int, now: Int64) {
        let slotID = slots[index].id
        let pid = slots[index].pid ?? 0
        if line == "ready" {
            guard case .starting = slots[index].state else { return }
            slots[index].becameReady(now: now)
            MasterLog.info("worker \(slotID) (pid \(pid)) ready")
            guard slots[index].generation == generation else {
                // Ready after a newer HUP: already superseded.
                stopSlot(index, reason: "superseded by generation \(generation)")
                return
            }
            startupFailuresInARow = 0
            // A current worker is serving: the oldest serving worker of an older generation may leave now.
            let older = slots.indices.filter { slots[$0].generation < generation && slots[$0].isReady }
            if let oldest = older.min(by: { slots[$0].generation < slots[$1].generation }) {
                metrics?.respawned(.reload)
                stopSlot(oldest, reason: "replaced by generation \(generation)")
            }
        } else if line.hasPrefix("autoreload ") {
            // Every worker watches, so one edit arrives once per worker: reload once per distinct file stamp.
            let change = line.dropFirst(11)
            guard autoreloadSeen.insert(String(change)).inserted else { return }
            let path = change.split(separator: " ").dropLast(2).joined(separator: " ")
            reload(because: "--py-autoreload: \(path) changed")
        } else if line == "recycle" {
            recycle(index, reason: "reached --max-requests", cause: .maxRequests, signalWorker: false, now: now)
        } else if line.hasPrefix("error: ") {
            slots[index].reportedError = String(line.dropFirst(7))
        } else if line.hasPrefix("fatal: ") {
            slots[index].reportedError = String(line.dropFirst(7))
            appCannotLoad(String(line.dropFirst(7)))
        }
    }

    private func reapWorkers() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            guard let index = slots.firstIndex(where: { $0.pid == pid }) else { continue }
            let now = monotonicMilliseconds()
            readStatusPipes(now: now)
            let slotID = slots[index].id
            let reason = Self.describeExit(status)
            let reported = slots[index].reportedError
            let replace: Bool
            if case .running = phase { replace = slots[index].generation == generation } else { replace = false }
            let served = slots[index].scoreboardSlot.map { scoreboard.read($0) }.flatMap { $0.pid == pid ? $0.requests : nil }
            countFinalRequests(workerID: slots[index].id, pid: pid, served: served)
            let killedByHarakiri = slots[index].harakiriAt != nil
            let action = slots[index].exited(now: now, replace: replace, servedRequests: served ?? 0)
            switch action {
            case .none:
                MasterLog.info("worker \(slotID) (pid \(pid)) exited: \(reason)")
            case .respawn(let at, let afterStartupFailure):
                metrics?.respawned(killedByHarakiri ? .harakiri : .died)
                recordDeparture(id: slotID, pid: pid, reason: killedByHarakiri ? "harakiri" : reason, now: now)
                let delay = at - now
                let when = delay > 0 ? "respawning in \(delay) ms" : "respawning"
                if afterStartupFailure {
                    MasterLog.error("worker \(slotID) (pid \(pid)) failed to start: \(reported ?? reason); \(when)")
                    recordStartupFailure(reported ?? "worker \(reason) before it was ready")
                } else {
                    MasterLog.info("worker \(slotID) (pid \(pid)) \(reason); \(when)")
                }
            }
            if let fd = slots[index].statusFD {
                close(fd)
                slots[index].statusFD = nil
            }
            // A dead worker no longer counts as serving (the keel wire's frames report the count).
            if let record = slots[index].scoreboardSlot { scoreboard.setPID(record, 0) }
            slots[index].scoreboardSlot = nil
        }
    }

    func beginStopping(graceful: Bool) {
        // New clients are refused from now on: the socket file goes and the master's copy is closed.
        for socket in sockets { socket.close() }
        for index in slots.indices { slots[index].stop() }
        let wait = graceful ? Int64(configuration.gracefulTimeout) * 1000 : 3000
        if case .stopping(let deadline, _) = phase, !graceful {
            phase = .stopping(deadline: min(deadline, monotonicMilliseconds() + wait), graceful: false)
        } else {
            phase = .stopping(deadline: monotonicMilliseconds() + wait, graceful: graceful)
        }
        killAll(graceful ? SIGTERM : SIGINT)
    }

    func killAll(_ signal: Int32) {
        for slot in slots {
            if let pid = slot.pid { kill(pid, signal) }
        }
    }

    static func describeExit(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 {
            let code = (status >> 8) & 0xff
            return code == 0 ? "exited normally" : "exited with code \(code)"
        }
        let name: String
        switch signal {
        case SIGKILL: name = "SIGKILL"
        case SIGSEGV: name = "SIGSEGV"
        case SIGABRT: name = "SIGABRT"
        case SIGTERM: name = "SIGTERM"
        case SIGINT: name = "SIGINT"
        case SIGBUS: name = "SIGBUS"
        case SIGILL: name = "SIGILL"
        case SIGTRAP: name = "SIGTRAP"
        default: name = "signal \(signal)"
        }
        return "killed by \(name)"
    }
}

extension Double {
    /// One decimal, without Foundation.
    var formatted1: String {
        let tenths = Int((self * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
