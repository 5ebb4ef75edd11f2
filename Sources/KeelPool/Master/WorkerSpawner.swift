import CKeelSys
import KeelSystem

#if canImport(Glibc)
import Glibc
#endif

/// Starts worker processes with posix_spawn of this executable (never fork() in a process with
/// threads): listening sockets land on fds 3…, the status pipe right after them, every other fd is closed.
struct WorkerSpawner {
    let executable: String
    /// Arguments every worker gets after the executable name (the `_worker` subcommand and the pool's flags).
    let baseArguments: [String]
    let listeners: [(fd: Int32, wire: WorkerConfiguration.Wire)]
    /// Shared with every worker, on the fd after the status pipe.
    let scoreboard: Scoreboard

    struct Spawned {
        var pid: pid_t
        /// Read end of the worker's status pipe (non-blocking, close-on-exec).
        var statusFD: Int32
    }

    func spawn(workerID: Int, scoreboardSlot: Int) throws(PoolError) -> Spawned {
        var pipeFDs: [Int32] = [-1, -1]
        guard keel_pipe2(&pipeFDs, O_CLOEXEC | O_NONBLOCK) == 0 else { throw .errno("cannot create a status pipe", errno) }
        let statusChildFD = Int32(3 + listeners.count)
        let scoreboardChildFD = statusChildFD + 1
        // Every source fd sits above the child's fds 3…scoreboardChildFD, so no dup2 onto them is a no-op.
        let readEnd = moveAbove(pipeFDs[0], scoreboardChildFD)
        let writeEnd = moveAbove(pipeFDs[1], scoreboardChildFD)
        defer { close(writeEnd) }
        fcntl(writeEnd, F_SETFL, 0)  // the worker writes to it blocking

        var arguments = baseArguments
        arguments += ["--worker-id", String(workerID), "--status-fd", String(statusChildFD), "--master-pid", String(getpid())]
        arguments += [
            "--scoreboard", "\(scoreboardChildFD):\(scoreboardSlot):\(scoreboard.capacity):\(scoreboard.threads)",
        ]
        for (index, listener) in listeners.enumerated() {
            arguments += ["--listener-fd", "\(listener.wire.rawValue):\(3 + index)"]
        }

        var moves: [(from: Int32, to: Int32)] = listeners.enumerated().map { ($1.fd, Int32(3 + $0)) }
        moves += [(writeEnd, statusChildFD), (scoreboard.fd, scoreboardChildFD)]
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(
                executable, arguments: arguments, moving: moves, closeFrom: scoreboardChildFD + 1,
                defaultSignals: SignalSet.masterSignals.members)
        } catch {
            close(readEnd)
            throw .errno("cannot spawn a worker (\(executable))", error.code)
        }
        return Spawned(pid: pid, statusFD: readEnd)
    }
}

/// Moves a master-side fd above `floor`, so it never collides with the low fds a worker is given.
func moveAbove(_ fd: Int32, _ floor: Int32) -> Int32 {
    guard fd <= floor else { return fd }
    let moved = fcntl(fd, F_DUPFD_CLOEXEC, floor + 1)
    guard moved >= 0 else { return fd }
    close(fd)
    return moved
}

/// This process's own executable, for spawning workers of the same build.
public func currentExecutablePath() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return CommandLine.arguments[0] }
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
