import CKeelSys
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start with posix_spawn and reap with waitpid(WNOHANG) whenever someone asks.
/// Not Foundation's Process: its one monitor thread learns of an exit when a socket the child inherits closes, so a
/// child that closes it early blocks that thread in waitpid (every other exit goes unseen meanwhile), and a grandchild
/// that keeps it makes the child look alive forever (a deinit's waitUntilExit then never returns: CI hung on that).
/// Here the child gets stdin from /dev/null, stdout and stderr to a file, no other descriptor of ours (closefrom 3),
/// no blocked signals and default handlers, and `isRunning` answers from waitpid at once.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let executable: String
    let arguments: [String]
    private let lock = NSLock()
    private var code: Int32?

    /// Starts `executable arguments`; stdout (and stderr unless `errorPath` is given) append to `outputPath`
    /// (/dev/null when nil).
    init(_ executable: String, _ arguments: [String], outputPath: String?, errorPath: String? = nil,
         inputPath: String = "/dev/null") throws {
        self.executable = executable
        self.arguments = arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        keel_spawn_file_actions_addclosefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let failed = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard failed == 0 else {
            throw HarnessError("cannot start \(executable): \(String(cString: strerror(failed)))")
        }
        pid = child
    }

    /// Exit code, or 128 + the signal that ended it; nil while it runs.
    var exitCode: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if code == nil {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                let signal = status & 0x7f
                code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            } else if reaped < 0 && errno == ECHILD {
                code = -1  // reaped by someone else: gone, its status unknown
            }
        }
        return code
    }

    var isRunning: Bool { exitCode == nil }

    /// Sends `signal` while it runs (never to a reaped pid, which may be somebody else's by now).
    func signal(_ signal: Int32) {
        lock.lock()
        defer { lock.unlock() }
        if code == nil { kill(pid, signal) }
    }

    /// Polls for the exit for up to `seconds`; the exit code, or nil if it still runs.
    func waitForExit(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let code = exitCode { return code }
            if Date() >= deadline { return nil }
            usleep(10_000)
        }
    }

    /// Runs `executable arguments` to its end within `seconds` (SIGKILLed past them): its exit code and output.
    /// stderr goes with stdout unless `errorPath` is given.
    static func run(_ executable: String, _ arguments: [String], seconds: Double = 60, errorPath: String? = nil) throws
        -> (code: Int32, output: String)
    {
        let scratch = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let outputPath = scratch + "/out"
        let child = try ChildProcess(
            executable, arguments, outputPath: outputPath, errorPath: errorPath)
        guard let code = child.waitForExit(seconds: seconds) else {
            child.signal(SIGKILL)
            _ = child.waitForExit(seconds: 5)
            throw HarnessError("\(executable) \(arguments.joined(separator: " ")) did not finish within \(seconds)s")
        }
        return (code, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    deinit {
        if isRunning {
            signal(SIGKILL)
            _ = waitForExit(seconds: 5)
        }
    }
}
