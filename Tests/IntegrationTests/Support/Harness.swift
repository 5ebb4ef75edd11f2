import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Errors of the harness itself, with what was waited for.
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Harness {
    /// The keel-pool binary built next to this test bundle. Tests run as root in CI and run workers as
    /// root on purpose, so the pools they start get KEEL_POOL_ALLOW_ROOT=1 (CLITests checks the refusal).
    static var keelPoolPath: String {
        setenv("KEEL_POOL_ALLOW_ROOT", "1", 1)
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("keel-pool").path
    }

    /// A short temp directory (unix socket paths are limited to 107 bytes).
    static func makeTempDirectory() throws -> String {
        var template = Array("/tmp/keel-test-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
        return String(cString: result)
    }

    /// A TCP port nobody listens on right now (bind :0, read it, close).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw HarnessError("cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass.
    static func waitUntil(_ what: String, seconds: Double = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(20_000)
        }
        if try condition() { return }
        throw HarnessError("timed out after \(seconds)s waiting for \(what)")
    }

    static func processExists(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Pids of the direct children of `pid` (from /proc), whichever of its threads started them.
    static func children(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [pid_t] in
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8) else { return [] }
            return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }
}

/// A running program started by a test (a ChildProcess, its output in `logPath`); stopped (TERM, then KILL) when the
/// test is done with it.
final class ManagedProcess: @unchecked Sendable {
    let process: ChildProcess
    let logPath: String

    init(_ executable: String, _ arguments: [String], logPath: String) throws {
        self.logPath = logPath
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process = try ChildProcess(executable, arguments, outputPath: logPath)
    }

    var pid: pid_t { process.pid }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// Sends `signal` and waits for the exit; returns the exit code (or 128+signal).
    @discardableResult
    func stop(signal: Int32 = SIGTERM, seconds: Double = 15) throws -> Int32 {
        process.signal(signal)
        guard let code = process.waitForExit(seconds: seconds) else {
            throw HarnessError("timed out after \(seconds)s waiting for pid \(pid) to exit after signal \(signal)")
        }
        return code
    }

    /// Waits for the program to exit on its own.
    func waitForExit(seconds: Double) throws -> Int32 {
        guard let code = process.waitForExit(seconds: seconds) else {
            throw HarnessError("timed out after \(seconds)s waiting for pid \(pid) to exit")
        }
        return code
    }
}

/// A keel-pool master started for one test, with its temp directory; `stop()` or deinit cleans up.
final class PoolUnderTest: @unchecked Sendable {
    let directory: String
    let process: ManagedProcess
    let httpPort: Int?
    let socketPath: String?

    let processes: Int

    /// Starts keel-pool with `arguments`, plus `--http-socket 127.0.0.1:PORT` and/or `--socket DIR/app.sock`.
    init(http: Bool = true, uwsgi: Bool = false, _ arguments: [String]) throws {
        directory = try Harness.makeTempDirectory()
        // The workers to wait for: --processes, or with --cheaper the ones it starts with.
        let flag = { (name: String) in arguments.firstIndex(of: name).flatMap { Int(arguments[$0 + 1]) } }
        processes = flag("--cheaper-initial") ?? flag("--cheaper") ?? flag("--processes") ?? 1
        var all = arguments
        if http {
            let port = try Harness.freePort()
            httpPort = port
            all += ["--http-socket", "127.0.0.1:\(port)"]
        } else {
            httpPort = nil
        }
        if uwsgi {
            let path = directory + "/app.sock"
            socketPath = path
            all += ["--socket", path]
        } else {
            socketPath = nil
        }
        process = try ManagedProcess(Harness.keelPoolPath, all, logPath: directory + "/pool.log")
        try waitUntilServing()
    }

    /// Waits until the master has logged every worker ready (without sending a request the app would see).
    func waitUntilServing() throws {
        try Harness.waitUntil("keel-pool to serve", seconds: 20) {
            guard process.isRunning else {
                throw HarnessError("keel-pool exited early:\n\(process.log)")
            }
            return readyWorkers >= processes
        }
    }

    var readyWorkers: Int { log.components(separatedBy: ") ready\n").count - 1 }

    var log: String { process.log }
    var workers: [pid_t] { Harness.children(of: process.pid) }

    @discardableResult
    func stop(signal: Int32 = SIGTERM) throws -> Int32 { try process.stop(signal: signal) }

    deinit {
        if process.isRunning { try? process.stop(signal: SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
