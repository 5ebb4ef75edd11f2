#if canImport(Glibc)
import Glibc
#endif

/// The master process: binds the sockets, spawns and supervises the workers, and turns signals into
/// pool actions. It has no event loop and runs no app code: one thread waiting on signals with a tick.
public final class PoolMaster {
    /// Startup failures in a row (no worker reaching "ready" in between) that end the master.
    public static let maxStartupFailures = 5
    /// How often the master wakes without a signal: status pipes, due respawns, shutdown deadline.
    static let tickMilliseconds = 100

    private enum Phase {
        case running
        case stopping(deadline: Int64, graceful: Bool)
    }

    private let configuration: PoolConfiguration
    private var sockets: [ListenSocket] = []
    private var slots: [WorkerSlot] = []
    private var spawner: WorkerSpawner!
    private var phase = Phase.running
    private var startupFailuresInARow = 0
    private var lastStartupError = ""
    private var exitCode: Int32 = 0

    public init(configuration: PoolConfiguration) {
        self.configuration = configuration
    }

    /// Binds, spawns and supervises until the pool is stopped; returns the process exit code.
    public func run() -> Int32 {
        SignalSet.masterSignals.block()
        do {
            try bindSockets()
            try writePidfile()
        } catch {
            MasterLog.error(error.description)
            cleanup()
            return 1
        }
        spawner = WorkerSpawner(
            executable: currentExecutablePath(), baseArguments: configuration.workerArguments,
            listeners: sockets.map { ($0.fd, $0.wire) })
        MasterLog.info(
            "keel-pool starting: app \(configuration.appName), \(configuration.processes) processes × "
                + "\(configuration.threads) threads, master pid \(getpid())")
        slots = (1...configuration.processes).map { WorkerSlot(id: $0) }

        while true {
            let now = monotonicMilliseconds()
            spawnDueWorkers(now: now)
            readStatusPipes(now: now)
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
            MasterLog.warning("HUP: graceful reload is not available in this version; ignored (use TERM and restart)")
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
        for (address, wire, flag) in wanted {
            let socket = try ListenSocket.bind(
                address, wire: wire, backlog: configuration.backlog, chmod: configuration.chmodSocket, flag: flag)
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
            do {
                let spawned = try spawner.spawn(workerID: slots[index].id)
                slots[index].spawned(pid: spawned.pid, now: now)
                slots[index].statusFD = spawned.statusFD
                MasterLog.info("spawned worker \(slots[index].id) (pid \(spawned.pid))")
            } catch {
                let at = slots[index].spawnFailed(now: now)
                MasterLog.error("\(error.description); retrying in \(at - now) ms")
                recordStartupFailure(error.description)
            }
        }
    }

    private func readStatusPipes(now: Int64) {
        for index in slots.indices {
            guard let fd = slots[index].statusFD else { continue }
            var buffer = [UInt8](repeating: 0, count: 1024)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count > 0 {
                    slots[index].statusText += String(decoding: buffer[..<count], as: UTF8.self)
                    continue
                }
                if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    close(fd)
                    slots[index].statusFD = nil
                }
                break
            }
            if slots[index].statusText.hasPrefix("ready"), case .starting = slots[index].state {
                slots[index].becameReady(now: now)
                startupFailuresInARow = 0
                MasterLog.info("worker \(slots[index].id) (pid \(slots[index].pid ?? 0)) ready")
            }
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
            let reported = slots[index].statusText
                .split(separator: "\n").first { $0.hasPrefix("error: ") }
                .map { String($0.dropFirst(7)) }
            let action = slots[index].exited(now: now)
            switch action {
            case .none:
                MasterLog.info("worker \(slotID) (pid \(pid)) exited: \(reason)")
            case .respawn(let at, let afterStartupFailure):
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
        }
    }

    private func recordStartupFailure(_ message: String) {
        startupFailuresInARow += 1
        lastStartupError = message
        if startupFailuresInARow >= Self.maxStartupFailures, case .running = phase {
            MasterLog.error(
                "workers failed to start \(startupFailuresInARow) times in a row; giving up. Last error: \(message)")
            exitCode = 1
            beginStopping(graceful: false)
        }
    }

    private func beginStopping(graceful: Bool) {
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

    private func killAll(_ signal: Int32) {
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
