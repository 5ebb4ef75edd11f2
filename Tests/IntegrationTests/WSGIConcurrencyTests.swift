import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The seed's `simple_app` (prints pid and REQUEST_URI, sleeps) and the GIL: one worker with one
/// thread serialises two requests, one worker with two threads runs them together.
@Suite("WSGI threads and the GIL", .timeLimit(.minutes(2)))
struct WSGIConcurrencyTests {
    /// Sends two requests at once to `simple_app` (sleeping `seconds`) and returns the app's
    /// (uri, event, monotonic time) log lines.
    static func twoConcurrentSleeps(threads: Int, seconds: Double) throws -> (log: String, spans: [String: (Double, Double)]) {
        let wsgi = try WSGIPool("simple_app", ["--threads", String(threads), "--socket-timeout", "10"])
        let port = wsgi.port
        let group = DispatchGroup()
        let statuses = Statuses()
        for name in ["sleep1", "sleep2"] {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let status = (try? HTTPClient.get(port: port, "/\(name)?s=\(seconds)"))?.status ?? 0
                statuses.record(status)
            }
        }
        #expect(group.wait(timeout: .now() + 30) == .success)
        #expect(statuses.all == [200, 200])
        try Harness.waitUntil("both requests in the log") { wsgi.log.components(separatedBy: " done ").count == 3 }
        let log = wsgi.log
        var spans: [String: (Double, Double)] = [:]
        for line in log.split(separator: "\n") {
            let fields = line.split(separator: " ")
            // "PID PPID /sleep1?s=0.5 called T" and "PID /sleep1?s=0.5 done T"
            if fields.count == 5, fields[3] == "called", let t = Double(fields[4]) {
                spans[String(fields[2]), default: (0, 0)].0 = t
            } else if fields.count == 4, fields[2] == "done", let t = Double(fields[3]) {
                spans[String(fields[1]), default: (0, 0)].1 = t
            }
        }
        try wsgi.pool.stop()
        return (log, spans)
    }

    @Test func oneProcessOneThreadSerialises() throws {
        let (log, spans) = try Self.twoConcurrentSleeps(threads: 1, seconds: 0.5)
        let ordered = spans.values.sorted { $0.0 < $1.0 }
        try #require(ordered.count == 2, "\(log)")
        // The second request starts only after the first has finished (the seed's 11:38:46 / 11:38:56).
        #expect(ordered[1].0 >= ordered[0].1)
    }

    @Test func oneProcessTwoThreadsOverlap() throws {
        let (log, spans) = try Self.twoConcurrentSleeps(threads: 2, seconds: 0.5)
        let ordered = spans.values.sorted { $0.0 < $1.0 }
        try #require(ordered.count == 2, "\(log)")
        // time.sleep releases the GIL and the worker holds it only for Python: both sleep at once.
        #expect(ordered[1].0 < ordered[0].1)
    }

    @Test func threadsTheAppStartsKeepRunningBetweenRequests() throws {
        let wsgi = try WSGIPool("ticks")
        let first = Int(try HTTPClient.get(port: wsgi.port, "/").text) ?? -1
        try Harness.waitUntil("the app's own thread to tick while no request runs") {
            (Int(try HTTPClient.get(port: wsgi.port, "/").text) ?? -1) >= first + 10
        }
        try wsgi.pool.stop()
    }

    @Test func termStopsAWorkerWhoseAppStartedThreads() throws {
        let wsgi = try WSGIPool("ticks", ["--processes", "2"])
        #expect(try HTTPClient.get(port: wsgi.port, "/").status == 200)
        // The app's thread was started with the pool's signals blocked, so TERM stays the pool's.
        #expect(try wsgi.pool.stop() == 0)
    }
}

/// Statuses collected from client threads.
final class Statuses: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func record(_ status: Int) { lock.withLock { values.append(status) } }
    var all: [Int] { lock.withLock { values } }
}
