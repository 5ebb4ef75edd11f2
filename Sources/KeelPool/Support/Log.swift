#if canImport(Glibc)
import Glibc
#endif

/// One-line log records on stderr, `2026-11-24T13:50:01Z keel-pool[pid] message`, as uWSGI prints them
/// to its logger. Used for lifecycle events and errors, never per request, so no caching is needed.
enum PoolLog {
    static func write(_ role: String, _ message: String) {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        let stamp =
            "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))Z"
        let line = "\(stamp) keel-pool[\(getpid())] \(role)\(message)\n"
        writeAll(2, line)
    }

    private static func pad(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

enum MasterLog {
    static func info(_ message: String) { PoolLog.write("master: ", message) }
    static func error(_ message: String) { PoolLog.write("master: error: ", message) }
    static func warning(_ message: String) { PoolLog.write("master: warning: ", message) }
}

enum WorkerLog {
    nonisolated(unsafe) static var workerID = 0
    static func info(_ message: String) { PoolLog.write("worker \(workerID): ", message) }
    static func error(_ message: String) { PoolLog.write("worker \(workerID): error: ", message) }
}
