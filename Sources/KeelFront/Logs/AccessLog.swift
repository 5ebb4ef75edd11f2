#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// The access log in nginx's `combined` format plus `$request_time` and `$upstream_response_time`, buffered like
/// nginx's `access_log ... buffer=64k flush=1s`: lines collect in a buffer per event loop (as nginx keeps one per
/// worker, no lock on the request path) and go out in one write when it fills, on the flush tick, and at exit.
public final class AccessLog: Sendable {
    struct Entry {
        var remoteAddress: String
        var requestLine: String
        var status: Int
        var bodyBytesSent: Int
        var referer: String?
        var userAgent: String?
        var requestTime: TimeAmount
        /// nil when no upstream was involved ("-").
        var upstreamTime: TimeAmount?
    }

    let sink: LogSink
    let capacity: Int

    public init(sink: LogSink, capacity: Int = 64 * 1024) {
        self.sink = sink
        self.capacity = capacity
    }

    /// Appends the entry's line to this loop's buffer, writing the buffer out when it is full.
    func log(_ entry: Entry, into buffer: AccessLogBuffer) {
        buffer.append(Self.format(entry, stamp: buffer.stamp()), for: self)
    }

    public func reopen() throws(LogSink.OpenError) {
        try sink.reopen()
    }

    /// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
    /// $request_time $upstream_response_time`.
    static func format(_ entry: Entry, stamp: String) -> String {
        "\(entry.remoteAddress) - - [\(stamp)] \"\(escaped(entry.requestLine))\" \(entry.status) \(entry.bodyBytesSent) "
            + "\"\(escaped(entry.referer ?? "-"))\" \"\(escaped(entry.userAgent ?? "-"))\" "
            + "\(seconds(entry.requestTime)) \(entry.upstreamTime.map(seconds) ?? "-")\n"
    }

    /// nginx escapes `"`, `\` and bytes outside printable ASCII as \xHH so a log line cannot be forged.
    static func escaped(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 < 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            return value
        }
        var out = ""
        for byte in value.utf8 {
            if byte < 0x20 || byte >= 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// Milliseconds resolution, "0.012", as nginx prints times.
    static func seconds(_ time: TimeAmount) -> String {
        let ms = max(0, time.nanoseconds / 1_000_000)
        let fraction = String(ms % 1000)
        return "\(ms / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// One event loop's pending access-log lines (touched only on that loop, or after the loops stopped) and its
/// `$time_local` stamp, formatted once per second.
final class AccessLogBuffer {
    private var bytes: [UInt8] = []
    private var owner: AccessLog?
    private var second = -1
    private var cachedStamp = ""

    init() {}

    func append(_ line: String, for log: AccessLog) {
        if owner !== log {
            flush()  // lines of the log before a reload go to that log's file
            owner = log
            bytes.reserveCapacity(log.capacity)
        }
        bytes.append(contentsOf: line.utf8)
        if bytes.count >= log.capacity { flush() }
    }

    func flush() {
        guard let owner, !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { owner.sink.write($0) }
        bytes.removeAll(keepingCapacity: true)
    }

    func stamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &now)
        if now.tv_sec != second {
            second = now.tv_sec
            cachedStamp = LogClock.shared.accessLogStamp()
        }
        return cachedStamp
    }
}
