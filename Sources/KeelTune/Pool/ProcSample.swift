#if canImport(Glibc)
    import Glibc
#endif

/// What /proc says about one worker process right now.
struct ProcSample: Sendable, Equatable {
    /// User + system CPU time, in microseconds.
    var cpuMicros: Int
    var rssBytes: Int
    /// Time its threads spent runnable but waiting for a core (schedstat), in microseconds: part of a request's
    /// busy time that is the machine's contention, not the app's blocking.
    var runQueueMicros: Int

    static let ticksPerSecond = max(1, sysconf(Int32(_SC_CLK_TCK)))
    static let pageSize = max(1, sysconf(Int32(_SC_PAGESIZE)))

    static func read(pid: Int32) -> ProcSample? {
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let cpu = cpuMicros(statLine: stat) else { return nil }
        let statm = readSmallFile("/proc/\(pid)/statm") ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return ProcSample(cpuMicros: cpu, rssBytes: pages * pageSize, runQueueMicros: runQueueMicros(pid: pid))
    }

    /// The second field of /proc/PID/task/TID/schedstat (nanoseconds waiting on a run queue), summed over threads.
    static func runQueueMicros(pid: Int32) -> Int {
        guard let directory = opendir("/proc/\(pid)/task") else { return 0 }
        defer { closedir(directory) }
        var total = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let tid = Int(name), let text = readSmallFile("/proc/\(pid)/task/\(tid)/schedstat") else { continue }
            let fields = text.split(separator: " ")
            if fields.count > 1, let waited = Int(fields[1]) { total += waited / 1000 }
        }
        return total
    }

    /// utime + stime from a /proc/PID/stat line (fields 14 and 15; the name in parentheses may hold spaces).
    static func cpuMicros(statLine: String) -> Int? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // After ")": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return (user + system) * 1_000_000 / ticksPerSecond
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}
