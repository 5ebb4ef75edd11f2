import Foundation
import Testing

/// --py-autoreload N (uWSGI) and --reload (gunicorn): an edited module reloads the workers through HUP's zero-drop
/// path; an edit that does not compile leaves the old workers serving, with the traceback in the log.
@Suite("WSGI autoreload", .timeLimit(.minutes(2)))
struct WSGIAutoreloadTests {
    static func app(answer: String) -> String {
        """
        def application(environ, start_response):
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'\(answer)']

        """
    }

    /// Waits (at most `seconds`) until the pool answers `expected`; returns how long that took.
    static func secondsUntil(_ expected: String, port: Int, seconds: Double) throws -> Double {
        let start = Date()
        try Harness.waitUntil("the answer \(expected)", seconds: seconds) {
            String(decoding: try HTTPClient.get(port: port, "/").body, as: UTF8.self) == expected
        }
        return Date().timeIntervalSince(start)
    }

    /// The edits keep the file's size and land within one second: a stale .pyc would pass Python's own check.
    @Test(arguments: [["--py-autoreload", "1"], ["--reload"]])
    func anEditReloadsAndASyntaxErrorKeepsTheOldWorkers(flags: [String]) throws {
        let appDirectory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: appDirectory) }
        let file = appDirectory + "/app.py"
        try Self.app(answer: "one").write(toFile: file, atomically: true, encoding: .utf8)
        let pool = try PoolUnderTest(["--wsgi-file", file, "--processes", "2"] + flags)
        let port = pool.httpPort!
        #expect(try Self.secondsUntil("one", port: port, seconds: 1) < 1)
        // Clients keep asking across both reloads: none of them may fail.
        let load = LoadClient(threads: 1, total: 100_000, seconds: 30) { try HTTPClient.get(port: port, "/").status }
        defer { load.stop() }  // on a failed expectation; the threads end within one request

        let edited = Date()
        try Self.app(answer: "two").write(toFile: file, atomically: true, encoding: .utf8)
        _ = try Self.secondsUntil("two", port: port, seconds: 3)
        let reloaded = Date().timeIntervalSince(edited)
        #expect(reloaded < 3, "the edit answered after \(reloaded) s")
        try Harness.waitUntil("the old generation to leave") { pool.workers.count == 2 }
        let serving = pool.workers

        try "def application(environ, start_response:\n".write(toFile: file, atomically: true, encoding: .utf8)
        try Harness.waitUntil("the failed import's traceback", seconds: 10) { pool.log.contains("SyntaxError") }
        #expect(String(decoding: try HTTPClient.get(port: port, "/").body, as: UTF8.self) == "two")
        #expect(Set(serving).isSubset(of: Set(pool.workers)), "the serving workers stay")

        try Self.app(answer: "three").write(toFile: file, atomically: true, encoding: .utf8)
        _ = try Self.secondsUntil("three", port: port, seconds: 10)
        load.stop()
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failed, first: \(load.failures.first ?? "")")
        #expect(load.succeeded > 10)
        #expect(pool.log.contains("--py-autoreload: \(file) changed: graceful reload"))
        try pool.stop()
    }
}
