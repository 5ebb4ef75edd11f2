import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("harakiri and stats", .serialized, .timeLimit(.minutes(2)))
struct HarakiriAndStatsTests {
    @Test func stuckRequestIsKilledWithinTheLimitAndOthersAreServed() throws {
        let pool = try PoolUnderTest(
            http: false, uwsgi: true, ["--app", "sleep", "--processes", "2", "--harakiri", "1"])
        let nginx = try NginxInteropTests.Nginx(directory: pool.directory, socket: pool.socketPath!)
        let port = nginx.port
        let stuck = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let start = Date()
        Thread {
            stuck.set((try? HTTPClient.get(port: port, "/stuck?ms=5000"))?.status ?? -1)
            done.signal()
        }.start()
        // Meanwhile short requests keep going to the other worker (and to the replacement).
        let load = LoadClient(threads: 1, total: 1_000_000, seconds: 2.5) { try HTTPClient.get(port: port, "/?ms=10").status }
        #expect(done.wait(timeout: .now() + 10) == .success)
        let elapsed = Date().timeIntervalSince(start)
        #expect(stuck.value == 502)
        #expect(elapsed < 3, "answered after \(elapsed)s")
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) failures, first: \(load.failures.first ?? "")")
        #expect(load.succeeded > 10)
        try Harness.waitUntil("the HARAKIRI line") {
            pool.log.contains("HARAKIRI: worker") && pool.log.contains("ran \"GET /stuck?ms=5000 HTTP/1.1\" for")
        }
        try Harness.waitUntil("the replacement") { pool.workers.count == 2 }
        try pool.stop()
    }

    @Test func harakiriSeesHTTPRequestsWhileUWSGITrafficFlows() throws {
        // Both protocols in one worker: their threads have separate scoreboard rows.
        let pool = try PoolUnderTest(http: true, uwsgi: true, ["--app", "sleep", "--threads", "2", "--harakiri", "1"])
        let port = pool.httpPort!
        let start = Date()
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox()
        Thread {
            result.set((try? HTTPClient.get(port: port, "/held?ms=6000"))?.status ?? -1)
            done.signal()
        }.start()
        let load = LoadClient(threads: 1, total: 1_000_000, seconds: 2.5, RecyclingTests.uwsgiHello(pool.socketPath!))
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(result.value == -1, "the killed worker's HTTP client sees the connection close")
        #expect(Date().timeIntervalSince(start) < 4)
        load.stop()
        load.wait()
        try Harness.waitUntil("the HARAKIRI line") { pool.log.contains("ran \"GET /held?ms=6000 HTTP/1.1\" for") }
        try pool.stop()
    }

    @Test func statsServesTheStateAndTheCLIPrintsATable() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stats = directory + "/stats.sock"
        let pool = try PoolUnderTest(
            http: false, uwsgi: true, ["--app", "sleep", "--processes", "2", "--threads", "2", "--stats", stats])
        let path = pool.socketPath!
        for _ in 0..<5 {
            _ = try UWSGIClient.exchange(path: path, vars: UWSGIClient.vars(uri: "/?ms=1"))
        }
        let busy = DispatchSemaphore(value: 0)
        Thread {
            _ = try? UWSGIClient.exchange(path: path, vars: UWSGIClient.vars(uri: "/held?ms=1500"))
            busy.signal()
        }.start()
        var document: [String: Any] = [:]
        try Harness.waitUntil("a busy thread in the stats") {
            let raw = try UWSGIStatsReader.read(unixPath: stats)
            document = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] ?? [:]
            let workers = document["workers"] as? [[String: Any]] ?? []
            return workers.contains { ($0["threads"] as? [[String: Any]] ?? []).contains { $0["request"] as? String == "GET /held?ms=1500 HTTP/1.1" } }
        }
        let workers = try #require(document["workers"] as? [[String: Any]])
        #expect(workers.count == 2)
        #expect(Set(workers.compactMap { $0["pid"] as? Int }) == Set(pool.workers.map(Int.init)))
        #expect(workers.map { $0["requests"] as? Int ?? 0 }.reduce(0, +) == 5)
        #expect(workers.allSatisfy { ($0["threads"] as? [Any])?.count == 2 })
        #expect(document["pid"] as? Int == Int(pool.process.pid))
        let table = try CLITests.run(["stats", stats])
        #expect(table.code == 0)
        #expect(table.output.contains("WID") && table.output.contains("REQUESTS"))
        #expect(table.output.contains("GET /held?ms=1500 HTTP/1.1"))
        #expect(busy.wait(timeout: .now() + 10) == .success)
        try pool.stop()
    }

    @Test func statsReportTheUnixListenQueue() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stats = directory + "/stats.sock"
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "sleep", "--stats", stats])
        // One worker, one thread: the first request runs, the other three wait in the listen queue.
        var clients: [TestSocket] = []
        for _ in 0..<4 {
            let client = try TestSocket(unixPath: pool.socketPath!)
            var packet = ByteBufferShim.packet(vars: UWSGIClient.vars(uri: "/?ms=1500"))
            try client.write(packet.readAll())
            clients.append(client)
        }
        try Harness.waitUntil("a queue of 3 in the stats", seconds: 5) {
            let document = try JSONSerialization.jsonObject(with: Data(try UWSGIStatsReader.read(unixPath: stats).utf8))
            let sockets = (document as? [String: Any])?["sockets"] as? [[String: Any]] ?? []
            return sockets.first?["queue"] as? Int == 3
        }
        for client in clients { #expect(try UWSGIClient.parse(try client.readToEOF()).status == 200) }
        try pool.stop()
    }

    @Test func statsOfANonRunningPoolIsAClearError() throws {
        let result = try CLITests.run(["stats", "/tmp/keel-no-such-stats.sock"])
        #expect(result.code != 0)
        #expect(result.output.contains("is keel-pool running with --stats"))
    }
}

enum UWSGIStatsReader {
    static func read(unixPath: String) throws -> String {
        String(decoding: try TestSocket(unixPath: unixPath).readToEOF(), as: UTF8.self)
    }
}
