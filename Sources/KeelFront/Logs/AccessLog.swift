import NIOConcurrencyHelpers
import NIOCore

/// The access log in nginx's `combined` format plus `$request_time` and `$upstream_response_time`, buffered like
/// nginx's `access_log ... buffer=64k flush=1s`: lines collect in memory and go out in one write when the buffer
/// fills, on the flush tick, and at exit.
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

    private let sink: LogSink
    private let capacity: Int
    private let buffer: NIOLockedValueBox<[UInt8]>

    public init(sink: LogSink, capacity: Int = 64 * 1024) {
        self.sink = sink
        self.capacity = capacity
        self.buffer = NIOLockedValueBox([])
    }

    func log(_ entry: Entry) {
        let line = Self.format(entry, stamp: LogClock.shared.accessLogStamp())
        let full: [UInt8]? = buffer.withLockedValue { pending in
            pending.append(contentsOf: line.utf8)
            guard pending.count >= capacity else { return nil }
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        if let full { full.withUnsafeBytes { sink.write($0) } }
    }

    public func flush() {
        let pending: [UInt8] = buffer.withLockedValue { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        pending.withUnsafeBytes { sink.write($0) }
    }

    public func reopen() throws(LogSink.OpenError) {
        flush()
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
