import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Recycling and reloads under load: every request sent is answered 200, none is lost.
@Suite("recycling and reload under load", .serialized, .timeLimit(.minutes(3)))
struct RecyclingTests {
    static func uwsgiHello(_ path: String) -> @Sendable () throws -> Int {
        { try UWSGIClient.parse(try UWSGIClient.exchange(path: path, vars: UWSGIClient.vars(uri: "/"))).status }
    }

    static func count(_ text: String, in log: String) -> Int { log.components(separatedBy: text).count - 1 }

    @Test func maxRequestsWithJitterRecyclesWithoutAFailure() throws {
        let statsDirectory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: statsDirectory) }
        let stats = statsDirectory + "/stats.sock"
        let pool = try PoolUnderTest(
            http: false, uwsgi: true,
            ["--app", "hello", "--processes", "2", "--max-requests", "50", "--max-requests-jitter", "10", "--stats", stats])
        let load = LoadClient(threads: 4, total: 3000, seconds: 60, Self.uwsgiHello(pool.socketPath!))
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failures, first: \(load.failures.first ?? "")")
        #expect(load.succeeded == 3000)
        let log = pool.log
        try Harness.waitUntil(
            "40 recycles to be logged; got \(Self.count("reached --max-requests: recycling", in: log)) of "
                + "\(Self.count("served --max-requests", in: log)), \(Self.count("\n", in: log)) lines"
        ) {
            Self.count("reached --max-requests: recycling", in: pool.log) >= 40
        }
        // 3,000 requests at 50…60 per worker: between 50 and 60 recycles, which stats count as respawns.
        #expect(Self.count("reached --max-requests: recycling", in: pool.log) <= 60)
        try Harness.waitUntil("stats to show the respawns") {
            let document = try JSONSerialization.jsonObject(with: Data(try UWSGIStatsReader.read(unixPath: stats).utf8))
            return ((document as? [String: Any])?["respawns"] as? Int ?? 0) >= 40
        }
        // A recycled worker may still be finishing while its successor runs: the count settles at two.
        try Harness.waitUntil("two workers once the last recycled one has left") { pool.workers.count == 2 }
        try pool.stop()
    }

    @Test func maxRequestsOnTheHTTPSocketToo() throws {
        let pool = try PoolUnderTest(["--app", "hello", "--processes", "2", "--threads", "2", "--max-requests", "20"])
        let port = pool.httpPort!
        let load = LoadClient(threads: 3, total: 600, seconds: 60) { try HTTPClient.get(port: port, "/").status }
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failures, first: \(load.failures.first ?? "")")
        #expect(load.succeeded == 600)
        try Harness.waitUntil("recycles") { Self.count("reached --max-requests: recycling", in: pool.log) >= 25 }
        try pool.stop()
    }

    @Test func hupEverySecondDuringLoadDropsNothingAndReplacesWorkers() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--processes", "2", "--threads", "2"])
        let before = Set(pool.workers)
        let load = LoadClient(threads: 4, total: 1_000_000, seconds: 12, Self.uwsgiHello(pool.socketPath!))
        for _ in 0..<10 {
            Thread.sleep(forTimeInterval: 1)  // the test's own pacing of signals, not synchronisation
            kill(pool.process.pid, SIGHUP)
        }
        load.stop()
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failures, first: \(load.failures.first ?? "")")
        #expect(load.succeeded > 100)
        // A generation a later HUP supersedes before it is ready never logs "ready" (slow starts on a busy machine),
        // so wait for the end state itself: two workers, both new, both ready.
        try Harness.waitUntil("two serving workers of the last generation", seconds: 20) {
            let workers = pool.workers
            let log = pool.log
            return workers.count == 2 && Set(workers).isDisjoint(with: before)
                && workers.allSatisfy { log.contains("(pid \($0)) ready\n") }
        }
        #expect(Self.count("HUP: graceful reload", in: pool.log) == 10)
        try pool.stop()
    }

    @Test func ttinAndTtouChangeTheWorkerCount() throws {
        let statsDirectory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: statsDirectory) }
        let stats = statsDirectory + "/stats.sock"
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--processes", "2", "--stats", stats])
        func statsWorkers() throws -> [[String: Any]] {
            let document = try JSONSerialization.jsonObject(with: Data(try UWSGIStatsReader.read(unixPath: stats).utf8))
            return ((document as? [String: Any])?["workers"] as? [[String: Any]] ?? []).filter { $0["status"] as? String != "stopping" }
        }
        kill(pool.process.pid, SIGTTIN)
        try Harness.waitUntil("three workers") { pool.workers.count == 3 && Self.count("ready\n", in: pool.log) == 3 }
        try Harness.waitUntil("stats to confirm three") { try statsWorkers().count == 3 }
        // One at a time: two identical signals sent together may arrive as one.
        kill(pool.process.pid, SIGTTOU)
        try Harness.waitUntil("two workers") { pool.workers.count == 2 }
        kill(pool.process.pid, SIGTTOU)
        try Harness.waitUntil("one worker") { pool.workers.count == 1 }
        kill(pool.process.pid, SIGTTOU)  // never below one
        try Harness.waitUntil("the refusal") { pool.log.contains("TTOU: already at 1 worker") }
        #expect(pool.workers.count == 1)
        try Harness.waitUntil("stats to confirm one") { try statsWorkers().count == 1 }
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(reply.status == 200)
        try pool.stop()
    }

    @Test func reloadOnRSSRecyclesALeakingWorker() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "leak", "--reload-on-rss", "120"])
        let first = pool.workers
        let path = pool.socketPath!
        let load = LoadClient(threads: 1, total: 400, seconds: 30) {
            try UWSGIClient.parse(try UWSGIClient.exchange(path: path, vars: UWSGIClient.vars(uri: "/?mb=8"))).status
        }
        try Harness.waitUntil("an RSS recycle", seconds: 30) { pool.log.contains("over --reload-on-rss 120: recycling") }
        load.stop()
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failures, first: \(load.failures.first ?? "")")
        try Harness.waitUntil("a new worker") { pool.workers.count == 1 && pool.workers != first }
        try pool.stop()
    }

    @Test func maxWorkerLifetimeRecyclesOnSchedule() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--max-worker-lifetime", "1"])
        let load = LoadClient(threads: 2, total: 1_000_000, seconds: 3.5, Self.uwsgiHello(pool.socketPath!))
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failures, first: \(load.failures.first ?? "")")
        #expect(Self.count("lived --max-worker-lifetime 1s: recycling", in: pool.log) >= 2)
        try pool.stop()
    }
}

@Suite("--logto and USR1", .timeLimit(.minutes(3)))  // bounds a hang; a queue behind blocking suites on the 2-thread pool can take ~60 s
struct LogReopenTests {
    @Test func usr1ReopensTheLogFileAfterItWasMoved() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/pool.log"
        let socket = directory + "/app.sock"
        let process = try ManagedProcess(
            Harness.keelPoolPath, ["--app", "hello", "--socket", socket, "--logto", log], logPath: directory + "/out")
        try Harness.waitUntil("the worker to be ready") {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains(") ready")
        }
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")  // what logrotate does
        kill(process.pid, SIGUSR1)
        try Harness.waitUntil("the master's line in the new file") {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("USR1: reopened \(log)")
        }
        // A worker line (an HTTP request on the uwsgi socket is logged by the worker) lands in the new file too.
        try Harness.waitUntil("a worker line in the new file") {
            let probe = try TestSocket(unixPath: socket)
            try probe.write("GET / HTTP/1.1\r\n\r\n")
            _ = try probe.readToEOF()
            return ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("worker 1: error: an HTTP request")
        }
        #expect(try String(contentsOfFile: log + ".1", encoding: .utf8).contains(") ready"))
        #expect(try process.stop() == 0)
    }
}

@Suite("reload edge cases", .timeLimit(.minutes(3)))  // bounds a hang; a queue behind blocking suites on the 2-thread pool can take ~60 s
struct ReloadEdgeCaseTests {
    @Test func rapidHUPsEndWithExactlyTheConfiguredWorkers() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--processes", "2"])
        for _ in 0..<4 {
            kill(pool.process.pid, SIGHUP)
            usleep(30_000)  // apart enough not to coalesce, close enough to overlap the generations
        }
        try Harness.waitUntil("two workers of the last generation") {
            pool.workers.count == 2 && pool.log.contains("HUP: graceful reload, starting generation 4")
                && RecyclingTests.count(") ready\n", in: pool.log) >= 4
        }
        // Settled: stays at two.
        try Harness.waitUntil("the count to stay at two", seconds: 3) {
            usleep(500_000)
            return pool.workers.count == 2
        }
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(reply.status == 200)
        try pool.stop()
    }
}
