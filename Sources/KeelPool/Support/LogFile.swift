#if canImport(Glibc)
import Glibc
#endif

/// `--logto FILE`: stdout and stderr of the master (and so of every worker it spawns) go to FILE.
/// `reopen()` is USR1's job: after logrotate moved the file, new lines go to a new one.
public enum LogFile {
    /// Opens `path` for appending and puts it on fds 1 and 2.
    public static func redirect(to path: String) throws(PoolError) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .errno("--logto \(path): cannot open for writing", errno) }
        dup2(fd, 1)
        dup2(fd, 2)
        close(fd)
    }

    /// Reopens `path` in place of fds 1 and 2; on failure the old file keeps the lines and the reason is logged.
    public static func reopen(_ path: String, log: (String) -> Void) {
        do {
            try redirect(to: path)
        } catch {
            log("USR1: \(error); still writing to the previous file")
        }
    }
}
