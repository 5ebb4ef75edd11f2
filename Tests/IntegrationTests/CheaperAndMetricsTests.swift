import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--cheaper` (adaptive workers) and the master's `--metrics`, on the built keel-pool.
@Suite("cheaper and pool metrics", .serialized, .timeLimit(.minutes(3)))
struct CheaperAndMetricsTests {
    /// Workers alive now, from the stats document: (serving or starting, stopping).
    static func workerCounts(_ stats: String) throws -> (live: Int, stopping: Int, target: Int?) {
        let document = try JSONSerialization.jsonObject(with: Data(try UWSGIStatsReader.read(unixPath: stats).utf8)) as! [String: Any]
        let workers = document["workers"] as! [[String: Any]]
        let stopping = workers.filter { ($0["status"] as? String) == "stopping" }.count
        let target = (document["cheaper"] as? [String: Any])?["target"] as? Int
        return (workers.count - stopping, stopping, target)
    }

    @Test(arguments: ["busyness", "backlog"])
    func stepLoadGrowsThePoolToProcessesAndIdleShrinksItBackWithoutAFailure(algorithm: String) throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stats = directory + "/stats.sock"
        let pool = try PoolUnderTest([
            "--app", "sleep", "--processes", "4", "--threads", "2", "--cheaper", "1", "--cheaper-algo", algorithm,
            "--cheaper-overload", "1", "--cheaper-busyness-multiplier", "2", "--stats", stats,
        ])
        let port = pool.httpPort!
        // Idle: the pool starts at --cheaper-initial (= --cheaper) and stays there.
        try Harness.waitUntil("the stats server") { (try? Self.workerCounts(stats)) != nil }
        #expect(try Self.workerCounts(stats).live == 1)
        #expect(try Self.workerCounts(stats).target == 1)

        // The step: 64 connections of 100 ms requests, 8 times what one worker of 2 threads serves at once.
        let load = LoadClient(threads: 64, total: 1_000_000, seconds: 25) { try HTTPClient.get(port: port, "/step?ms=100").status }
        try Harness.waitUntil("the pool to grow to --processes 4", seconds: 20) {
            try Self.workerCounts(stats).live == 4 && pool.log.contains("now 4 of 1-4")
        }
        load.stop()
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failed requests, first: \(load.failures.first ?? "")")
        #expect(load.succeeded > 64)

        // Idle again: one worker at a time goes, each only when idle, down to --cheaper 1.
        try Harness.waitUntil("the pool to shrink back to --cheaper 1", seconds: 30) {
            let counts = try Self.workerCounts(stats)
            return counts.live == 1 && counts.stopping == 0 && counts.target == 1
        }
        // A request after the shrink is served by the worker that stayed.
        #expect(try HTTPClient.get(port: port, "/after?ms=1").status == 200)
        let lines = pool.log.split(separator: "\n").filter { $0.contains("cheaper (\(algorithm)):") }
        let grew = lines.filter { $0.contains("spawning") }
        let shrank = lines.filter { $0.contains("retiring this idle worker") }
        #expect(!grew.isEmpty && shrank.count == 3, "\(lines)")
        if algorithm == "busyness" {
            #expect(grew.allSatisfy { $0.contains("busyness") || $0.contains("listen queue") }, "\(grew)")
            #expect(shrank.allSatisfy { $0.contains("under --cheaper-busyness-min 25% for 2 periods of 1 s") }, "\(shrank)")
        } else {
            #expect(grew.allSatisfy { $0.contains("reached --cheaper-backlog-alert 1") }, "\(grew)")
            #expect(shrank.allSatisfy { $0.contains("listen queue empty for 2 periods of 1 s") }, "\(shrank)")
        }
        // The stats list the retirements with their reasons.
        let document = try UWSGIStatsReader.read(unixPath: stats)
        #expect(document.contains("\"recent_recycles\": [{") && document.contains("retiring this idle worker"))
        let table = try CLITests.run(["stats", stats]).output
        #expect(table.contains("cheaper (\(algorithm)): target 1 workers of 1-4"), "\(table)")
        #expect(table.contains("recent recycles (newest first):") && table.contains("retiring this idle worker"), "\(table)")
        try pool.stop()
    }

    /// Scrapes the master's /metrics.
    static func scrape(_ port: Int) throws -> String {
        let reply = try HTTPClient.get(port: port, "/metrics")
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return String(decoding: reply.body, as: UTF8.self)
    }

    /// The sum of a metric's samples whose labels contain `matching`.
    static func value(_ exposition: String, _ name: String, matching: String = "") -> Double {
        exposition.split(separator: "\n").filter { line in
            !line.hasPrefix("#") && (line.hasPrefix(name + " ") || line.hasPrefix(name + "{")) && (matching.isEmpty || line.contains(matching))
        }.reduce(0) { $0 + (Double($1.split(separator: " ").last ?? "") ?? .nan) }
    }

    static func promtool(_ exposition: String, in directory: String) throws -> (code: Int32, output: String) {
        let file = directory + "/metrics.txt"
        try exposition.write(toFile: file, atomically: true, encoding: .utf8)
        return try TLSTools.shell("promtool check metrics < \(file) 2>&1")
    }

    @Test func metricsPassPromtoolAndCountExactlyTheRequestsSentAcrossRecycles() throws {
        let metricsPort = try Harness.freePort()
        let pool = try PoolUnderTest([
            "--app", "hello", "--processes", "2", "--threads", "2", "--max-requests", "5",
            "--metrics", "127.0.0.1:\(metricsPort)",
        ])
        let port = pool.httpPort!
        let before = try Self.scrape(metricsPort)
        let check = try Self.promtool(before, in: pool.directory)
        #expect(check.code == 0, "promtool: \(check.output)")
        #expect(Self.value(before, "keel_pool_requests_total") == 0)
        #expect(Self.value(before, "keel_pool_workers") == 2)
        #expect(Self.value(before, "keel_pool_cheaper_target") == 2)

        for _ in 0..<7 { #expect(try HTTPClient.get(port: port, "/").status == 200) }
        var after = ""
        try Harness.waitUntil("7 requests counted") {
            after = try Self.scrape(metricsPort)
            return Self.value(after, "keel_pool_requests_total") == 7
        }
        // 13 more: with --max-requests 5 over two workers, recycled workers' counts carry on in their ids' series.
        for _ in 0..<13 { #expect(try HTTPClient.get(port: port, "/").status == 200) }
        try Harness.waitUntil("20 requests counted and the recycles") {
            after = try Self.scrape(metricsPort)
            return Self.value(after, "keel_pool_requests_total") == 20
                && Self.value(after, "keel_pool_respawns_total", matching: "max_requests") >= 2
        }
        #expect(Self.value(after, "keel_pool_respawns_total", matching: "died") == 0)
        #expect(Self.value(after, "keel_pool_worker_rss_bytes") > 1_000_000)
        #expect(after.contains("keel_pool_listen_queue{socket=\"127.0.0.1:\(port)\"}"))
        let recheck = try Self.promtool(after, in: pool.directory)
        #expect(recheck.code == 0, "promtool: \(recheck.output)")

        // Only /metrics is served; other paths and methods get their HTTP answers.
        #expect(try HTTPClient.get(port: metricsPort, "/").status == 404)
        #expect(try HTTPClient.request(port: metricsPort, method: "POST", "/metrics").status == 405)
        try pool.stop()
    }

    @Test func metricsCountHarakiriAndDeathsByReason() throws {
        let metricsPort = try Harness.freePort()
        let pool = try PoolUnderTest([
            "--app", "sleep", "--processes", "1", "--harakiri", "1", "--metrics", "127.0.0.1:\(metricsPort)",
        ])
        _ = try? HTTPClient.get(port: pool.httpPort!, "/stuck?ms=4000")
        try Harness.waitUntil("the harakiri counted", seconds: 15) {
            let text = try Self.scrape(metricsPort)
            return Self.value(text, "keel_pool_harakiri_total") == 1
                && Self.value(text, "keel_pool_respawns_total", matching: "harakiri") == 1
        }
        try pool.stop()
    }

    @Test(arguments: [
        (["--cheaper", "4", "--processes", "4"], "--cheaper 4 must be below --processes 4"),
        (["--cheaper", "1", "--processes", "4", "--cheaper-algo", "spare"], "--cheaper-algo spare: give busyness or backlog"),
        (["--cheaper", "2", "--processes", "4", "--cheaper-initial", "1"], "--cheaper-initial 1: give a number from --cheaper 2"),
        (["--cheaper-step", "2", "--processes", "4"], "--cheaper-step needs --cheaper N"),
        (["--cheaper", "1", "--processes", "4", "--cheaper-overload", "0"], "--cheaper-overload 0"),
        (["--cheaper", "1", "--processes", "3", "--cheaper-busyness-min", "60"], "give percents with min below max"),
        (["--metrics", "/tmp/keel-metrics.sock"], "--metrics /tmp/keel-metrics.sock: give HOST:PORT"),
    ])
    func badAdaptiveAndMetricsFlagsAreRefusedInOneLine(arguments: [String], message: String) throws {
        let (code, output) = try CLITests.run(["--app", "hello", "--http-socket", "127.0.0.1:1"] + arguments)
        #expect(code != 0)
        #expect(output.contains(message), "\(output)")
    }

    @Test func ttinIsRefusedWithAReasonWhileCheaperDecides() throws {
        let pool = try PoolUnderTest(["--app", "hello", "--processes", "3", "--cheaper", "1"])
        kill(pool.process.pid, SIGTTIN)
        try Harness.waitUntil("the TTIN line") { pool.log.contains("TTIN ignored: --cheaper decides the number of workers") }
        try pool.stop()
    }
}
