#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// Local-time stamps for logs, formatted once per second as nginx caches its time strings (no Foundation).
final class LogClock: Sendable {
    static let shared = LogClock()

    private struct Cache {
        var second = -1
        var accessStamp = ""
        var errorStamp = ""
    }

    private let cache = NIOLockedValueBox(Cache())

    /// "24/Nov/2026:10:00:00 +0000", nginx's `$time_local`.
    func accessLogStamp() -> String { stamps().access }

    /// "2026/11/24 10:00:00", nginx's error log stamp.
    func errorLogStamp() -> String { stamps().error }

    private func stamps() -> (access: String, error: String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let second = now.tv_sec
        return cache.withLockedValue { cache in
            if cache.second != second {
                cache.second = second
                cache.accessStamp = Self.format(second, "%d/%b/%Y:%H:%M:%S %z")
                cache.errorStamp = Self.format(second, "%Y/%m/%d %H:%M:%S")
            }
            return (cache.accessStamp, cache.errorStamp)
        }
    }

    private static func format(_ second: Int, _ pattern: String) -> String {
        var time = time_t(second)
        var parts = tm()
        localtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
