import Foundation
import KeelPool
import KeelSystem

#if canImport(Glibc)
    import Glibc
#endif

/// One keel-pool started by tune for one shape: spawned with its output in a log file, ready when its stats say
/// every worker is up, stopped with TERM and then KILL after a grace period.
final class PoolProcess {
    let pid: pid_t
    let httpPort: Int
    let statsPort: Int
    let logPath: String
    private var exitCode: Int32?

    /// Per worker pid, what the stats server counts: requests and busy microseconds.
    struct WorkerCounters: Equatable {
        var requests: Int
        var busyMicros: Int
    }

    init(executable: String, arguments: [String], httpPort: Int, statsPort: Int, logPath: String) throws {
        self.httpPort = httpPort
        self.statsPort = statsPort
        self.logPath = logPath
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw TuneError("cannot write \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(null) }
        do {
            pid = try ProcessSpawner.spawn(
                executable, arguments: TiedExec.arguments(executable: executable, command: arguments),
                moving: [(null, 0), (log, 1), (log, 2)], closeFrom: 3,
                defaultSignals: [SIGINT, SIGTERM, SIGHUP, SIGPIPE])
        } catch {
            throw TuneError(error.description)
        }
    }

    /// Nil while running; the exit code (or 128 + signal) once it has ended and been reaped.
    func exited() -> Int32? {
        if let exitCode { return exitCode }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        exitCode = Self.code(status)
        return exitCode
    }

    /// Polls the stats server until `processes` workers run, or throws keel-pool's own error line if it exits.
    func waitUntilReady(processes: Int, deadline: Double, stopRequested: () -> Bool) throws {
        while Clock.now < deadline {
            if stopRequested() { throw TuneError("stopped") }
            if let code = exited() {
                throw TuneError("keel-pool exited with code \(code) before serving: \(errorLine())")
            }
            if let workers = workers(), workers.count == processes { return }
            usleep(50_000)
        }
        throw TuneError("keel-pool did not start \(processes) workers in time: \(errorLine())")
    }

    /// The worker pids and counters from one stats document; nil when the stats server did not answer, or while a
    /// worker is still starting.
    func workers() -> [Int32: WorkerCounters]? {
        guard let text = PoolStats.fetch(port: statsPort),
            let document = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let list = document["workers"] as? [[String: Any]]
        else { return nil }
        var result: [Int32: WorkerCounters] = [:]
        for worker in list {
            guard let pid = worker["pid"] as? Int, let requests = worker["requests"] as? Int,
                worker["status"] as? String != "starting"
            else { return nil }
            let average = worker["avg_rt_us"] as? Int ?? 0
            result[Int32(pid)] = WorkerCounters(requests: requests, busyMicros: average * requests)
        }
        return result
    }

    /// The line of keel-pool's log that says what went wrong: the master's error (it names the cause once, while
    /// workers it stops may fail after it in other ways), else the first error line, else the last line.
    func errorLine() -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let firstError = lines.first { line in
            let lower = line.lowercased()
            return lower.contains("error") || lower.contains("refusing") || lower.contains("cannot")
        }
        return lines.first { $0.contains("master: error") } ?? firstError ?? lines.last
            ?? "(no output; see \(logPath))"
    }

    /// TERM, then KILL after `grace` seconds; always reaps.
    func stop(grace: Double) {
        guard exited() == nil else { return }
        kill(pid, SIGTERM)
        let deadline = Clock.now + grace
        while Clock.now < deadline {
            if exited() != nil { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        if waitpid(pid, &status, 0) == pid { exitCode = Self.code(status) }
        // The master's workers die with it (they watch their parent); any left behind get the same end.
        for worker in lingeringChildren { kill(worker, SIGKILL) }
    }

    private var lingeringChildren: [pid_t] = []

    /// Remembers the worker pids so `stop` can make sure none outlives a killed master.
    func remember(workers: [Int32]) { lingeringChildren = workers }

    private static func code(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// Reads one document from a keel-pool `--stats` TCP port on loopback (nil while it does not answer).
enum PoolStats {
    static func fetch(port: Int) -> String? {
        guard let text = try? StatsClient.fetch(.tcp(host: "127.0.0.1", port: port), timeoutSeconds: 2), !text.isEmpty
        else { return nil }
        return text
    }
}

enum LoopbackPort {
    static func address(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return address
    }

    /// A loopback port nobody listens on now (bind port 0, read it, close); keel-pool binds it a moment later.
    static func free() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = address(0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw TuneError("cannot find a free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Monotonic seconds.
enum Clock {
    static var now: Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
