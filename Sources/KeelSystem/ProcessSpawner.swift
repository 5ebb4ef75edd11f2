import CKeelSys

#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn as both servers need it (never fork() in a process with threads): chosen fds dup2'd into place,
/// every fd from `closeFrom` up closed, an empty signal mask, and the given signals reset to their default action —
/// a signal the parent blocks, ignores or traps would otherwise stay that way across exec.
public enum ProcessSpawner {
    public struct SpawnError: Error, CustomStringConvertible {
        public var executable: String
        public var code: Int32
        public var description: String { "cannot spawn \(executable): \(String(cString: strerror(code)))" }
    }

    /// Returns the child's pid. `searchPath` looks a bare name up in PATH (posix_spawnp).
    public static func spawn(
        _ executable: String, arguments: [String], moving fds: [(from: Int32, to: Int32)] = [], closeFrom: Int32,
        defaultSignals: [Int32], searchPath: Bool = false, extraEnvironment: [String] = []
    ) throws(SpawnError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (from, to) in fds { posix_spawn_file_actions_adddup2(&actions, from, to) }
        keel_spawn_file_actions_addclosefrom(&actions, closeFrom)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in defaultSignals { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The parent's environment, plus "NAME=value" entries for this child only (no setenv in a threaded parent).
        var envp: [UnsafeMutablePointer<CChar>?] = []
        var added: [UnsafeMutablePointer<CChar>?] = []
        if !extraEnvironment.isEmpty {
            let names = Set(extraEnvironment.map { $0.prefix { $0 != "=" } + "=" })
            var entry = environ
            while let pointer = entry.pointee {
                let text = String(cString: pointer)
                if !names.contains(where: { text.hasPrefix($0) }) { envp.append(pointer) }
                entry += 1
            }
            added = extraEnvironment.map { strdup($0) }
            envp += added + [nil]
        }
        defer { added.forEach { free($0) } }
        var pid: pid_t = 0
        let result = envp.isEmpty
            ? (searchPath
                ? posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
                : posix_spawn(&pid, executable, &actions, &attributes, argv, environ))
            : (searchPath
                ? posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
                : posix_spawn(&pid, executable, &actions, &attributes, argv, envp))
        guard result == 0 else { throw SpawnError(executable: executable, code: result) }
        return pid
    }
}
