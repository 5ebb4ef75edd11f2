#if canImport(Glibc)
import Glibc
#endif

/// RFC 9110 §5.6.7 IMF-fixdate ("Tue, 01 Dec 2026 05:41:23 GMT"), formatted at most once per second per event
/// loop, as nginx caches its `ngx_cached_http_time`: a response's `Date` costs a coarse clock read.
final class HTTPDateClock {
    private var second = -1
    private var cached = ""

    init() {}

    /// Now, to the second.
    var now: String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &time)
        if time.tv_sec != second {
            second = time.tv_sec
            cached = Self.format(second)
        }
        return cached
    }

    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the epoch → IMF-fixdate, without the C locale's strftime.
    static func format(_ seconds: Int) -> String {
        let daysSinceEpoch = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - daysSinceEpoch * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: daysSinceEpoch)
        let weekday = days[((daysSinceEpoch % 7) + 7) % 7]
        var text = weekday + ", " + twoDigits(day) + " " + months[month - 1] + " " + String(year) + " "
        text += twoDigits(secondOfDay / 3600) + ":" + twoDigits(secondOfDay / 60 % 60) + ":" + twoDigits(secondOfDay % 60) + " GMT"
        return text
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0" + String(value) : String(value) }

    /// Howard Hinnant's days → civil date (proleptic Gregorian), exact for every day.
    private static func civilDate(daysSinceEpoch: Int) -> (year: Int, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
