#if canImport(Glibc)
import Glibc
#endif
import NIOHTTP1
import UWSGI

/// Conditional requests on a file (RFC 9110 §13): If-None-Match before If-Modified-Since, weak comparison for
/// If-None-Match, and If-Range deciding whether a Range header counts.
enum Conditional {
    static func notModified(_ headers: HTTPHeaders, etag: String, modified: Int) -> Bool {
        let noneMatch = headers[canonicalForm: "if-none-match"]
        if !noneMatch.isEmpty {
            return noneMatch.contains { $0 == "*" || weakEqual(String($0), etag) }
        }
        if let since = headers.first(name: "if-modified-since").flatMap(parseHTTPDate) {
            return modified <= since
        }
        return false
    }

    /// A Range applies unless If-Range names another version (strong ETag match, or the exact Last-Modified date).
    static func ifRangeAllows(_ headers: HTTPHeaders, etag: String, modified: Int) -> Bool {
        guard let condition = headers.first(name: "if-range") else { return true }
        if condition.hasPrefix("\"") || condition.hasPrefix("W/") { return condition == etag }
        return parseHTTPDate(condition) == modified
    }

    static func weakEqual(_ lhs: String, _ rhs: String) -> Bool {
        func opaque(_ tag: String) -> Substring { tag.hasPrefix("W/") ? tag.dropFirst(2) : Substring(tag) }
        return opaque(lhs) == opaque(rhs)
    }

    /// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") to seconds since the epoch; nil for anything else.
    static func parseHTTPDate(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard bytes.count == 29, bytes[3] == UInt8(ascii: ","), text.hasSuffix(" GMT") else { return nil }
        func number(_ range: Range<Int>) -> Int32? { Int32(String(decoding: bytes[range], as: UTF8.self)) }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let day = number(5..<7), let month = months.firstIndex(of: String(decoding: bytes[8..<11], as: UTF8.self)),
            let year = number(12..<16), let hour = number(17..<19), let minute = number(20..<22),
            let second = number(23..<25)
        else { return nil }
        var parts = tm()
        parts.tm_mday = day
        parts.tm_mon = Int32(month)
        parts.tm_year = year - 1900
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        return timegm(&parts)
    }
}

/// A single `Range: bytes=…` against a file of `size` bytes; several ranges are answered whole, as RFC 9110 allows.
enum ByteRange: Equatable {
    case whole
    case unsatisfiable
    case part(Range<Int>)

    static func parse(_ header: String, size: Int) -> ByteRange {
        guard header.hasPrefix("bytes=") else { return .whole }
        let spec = header.dropFirst(6).trimmingSpaces
        guard !spec.contains(",") else { return .whole }
        let bounds = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard bounds.count == 2 else { return .whole }
        let first = bounds[0].trimmingSpaces
        let last = bounds[1].trimmingSpaces
        if first.isEmpty {
            // "-N": the last N bytes.
            guard let suffix = Int(last), suffix >= 0 else { return .whole }
            if suffix == 0 || size == 0 { return .unsatisfiable }
            return .part(max(0, size - suffix)..<size)
        }
        guard let start = Int(first), start >= 0 else { return .whole }
        if start >= size { return .unsatisfiable }
        if last.isEmpty { return .part(start..<size) }
        guard let end = Int(last), end >= start else { return .whole }
        return .part(start..<min(end + 1, size))
    }
}
