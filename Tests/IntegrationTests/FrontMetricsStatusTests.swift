import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel's `/metrics` (promtool-clean, counters moving by exactly the requests sent) and its live status page (seen by
/// headless Chromium while a pool is busy, refused to clients outside `allow`).
@Suite("keel metrics and status page", .serialized, .timeLimit(.minutes(4)))
struct FrontMetricsStatusTests {
    /// Series name with labels → value, from the text exposition.
    static func samples(_ exposition: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            values[String(line[..<space])] = value
        }
        return values
    }

    static func scrape(_ port: Int) throws -> String {
        // keel binds the metrics listener after its HTTP listeners: the first scrape may come before it is up.
        try Harness.waitUntil("the metrics listener on \(port)", seconds: 10) { (try? TestSocket(tcpPort: port)) != nil }
        let reply = try HTTPClient.get(port: port, "/metrics")
        guard reply.status == 200 else { throw HarnessError("/metrics answered \(reply.status): \(reply.text)") }
        #expect(reply.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return reply.text
    }

    /// Runs a program in `directory` to its end within `seconds` (killed past them): its exit status and its stdout.
    static func run(_ executable: String, _ arguments: [String], in directory: String, seconds: Double) throws -> (
        Int32, String
    ) {
        try ChildProcess.run(executable, arguments, seconds: seconds, errorPath: "/dev/null")
    }

    @Test func metricsPassPromtoolAndCountExactlyTheRequestsSent() throws {
        let keel = try FrontUnderTest(
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [metrics]
                listen = "127.0.0.1:{PORT2}"
                [[route]]
                path = "/api"
                return = 200
                body = "ok"
                [[route]]
                path = "/dead"
                uwsgi = "unix:{DIR}/nobody.sock"
                """)
        let before = Self.samples(try Self.scrape(keel.port2))
        for _ in 0..<7 { #expect(try keel.get("/api/items").status == 200) }
        for _ in 0..<3 {
            #expect(
                try HTTPClient.request(port: keel.port, method: "POST", "/api/items", body: Array("hello".utf8)).status
                    == 200)
        }
        #expect(try HTTPClient.request(port: keel.port, method: "PROPFIND", "/api/pot").status == 200)
        #expect(try keel.get("/dead").status == 502)
        let exposition = try Self.scrape(keel.port2)
        let after = Self.samples(exposition)
        func delta(_ series: String) -> Double { (after[series] ?? -1) - (before[series] ?? 0) }

        #expect(delta(#"keel_http_requests_total{route="/api",method="GET",status="2xx"}"#) == 7)
        #expect(delta(#"keel_http_requests_total{route="/api",method="POST",status="2xx"}"#) == 3)
        #expect(delta(#"keel_http_requests_total{route="/api",method="OTHER",status="2xx"}"#) == 1)
        #expect(delta(#"keel_http_requests_total{route="/dead",method="GET",status="5xx"}"#) == 1)
        #expect(delta(#"keel_http_request_duration_seconds_count{route="/api"}"#) == 11)
        #expect(delta("keel_request_body_bytes_total") == 15)
        #expect(delta("keel_response_body_bytes_total") >= 11 * 2)
        #expect(
            delta(
                #"keel_upstream_failures_total{upstream="unix:\#(keel.directory)/nobody.sock",server="unix:\#(keel.directory)/nobody.sock"}"#
            ) == 1)
        #expect(after["keel_connections_active"] != nil)
        #expect(after["keel_tls_handshakes_total"] == 0)

        // promtool reads the exposition from stdin.
        let input = keel.directory + "/metrics.txt"
        try exposition.write(toFile: input, atomically: true, encoding: .utf8)
        let (status, output) = try Self.run(
            "/bin/sh", ["-c", "/usr/bin/promtool check metrics < \(input) 2>&1"], in: keel.directory, seconds: 30)
        #expect(status == 0, "promtool: \(output)")
        #expect(try keel.stop() == 0)
    }

    @Test func tlsHandshakesAndTheirFailuresAreCounted() throws {
        let directory = try Harness.makeTempDirectory()
        _ = try TLSTools.makeCertificate(in: directory, name: "one", names: ["localhost"])
        let metricsPort = try Harness.freePort()
        let keel = try FrontUnderTest(
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                tls = true
                [tls]
                handshake_timeout = "1s"
                [[tls.certificate]]
                cert = "{DIR}/one.pem"
                key = "{DIR}/one.key"
                [metrics]
                listen = "127.0.0.1:\(metricsPort)"
                [[route]]
                return = 200
                """, directory: directory)
        let before = Self.samples(try Self.scrape(metricsPort))
        let curl = try TLSTools.shell("curl -sk --max-time 20 https://127.0.0.1:\(keel.port)/", seconds: 30)
        #expect(curl.code == 0, "\(curl.output)")
        // Plain HTTP on the TLS port: a failed handshake.
        let plain = try TestSocket(tcpPort: keel.port)
        try plain.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try? plain.readToEOF()
        try Harness.waitUntil("the failure to be counted", seconds: 10) {
            Self.samples(try Self.scrape(metricsPort))["keel_tls_handshake_failures_total"]
                == (before["keel_tls_handshake_failures_total"] ?? 0) + 1
        }
        let after = Self.samples(try Self.scrape(metricsPort))
        #expect(after["keel_tls_handshakes_total"] == (before["keel_tls_handshakes_total"] ?? 0) + 1)
        #expect(after[#"keel_http_requests_total{route="/",method="GET",status="2xx"}"#] == 1)
        #expect(try keel.stop() == 0)
    }

    static func statusConfig(allow: String? = nil) -> String {
        """
        [[listen]]
        address = "127.0.0.1:{PORT}"
        [status]
        path = "/keel/status"
        \(allow.map { "allow = [\($0)]" } ?? "")
        [[pool]]
        name = "app"
        args = ["--socket", "{DIR}/app.sock", "--processes", "2", "--threads", "2", "--app", "sleep", "--allow-root"]
        [[route]]
        uwsgi = "unix:{DIR}/app.sock"
        """
    }

    @Test func statusPageShowsTheBusyPoolInChromium() throws {
        let keel = try FrontUnderTest(config: Self.statusConfig())
        // Three long requests on three distinct paths: three busy threads with known request lines.
        let lines = (1...3).map { "GET /held\($0)?ms=20000 HTTP/1.1" }
        let clients = try lines.map { line -> TestSocket in
            let socket = try TestSocket(tcpPort: keel.port)
            try socket.write("\(line)\r\nHost: x\r\n\r\n")
            return socket
        }
        var statsAddress = ""
        try Harness.waitUntil("the status data to show three busy threads", seconds: 15) {
            let reply = try keel.get("/keel/status.json")
            let document = try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]
            let pool = (document?["pools"] as? [[String: Any]])?.first
            statsAddress = pool?["stats_address"] as? String ?? ""
            let workers = (pool?["stats"] as? [String: Any])?["workers"] as? [[String: Any]] ?? []
            let busy = workers.flatMap { $0["threads"] as? [[String: Any]] ?? [] }.filter {
                $0["status"] as? String == "busy"
            }
            return busy.count == 3
        }
        #expect(
            statsAddress.hasPrefix("unix:/tmp/keel-stats-"),
            "keel gave the pool a private stats socket: \(statsAddress)")

        let url = "http://127.0.0.1:\(keel.port)/keel/status"
        let screenshot = keel.directory + "/status.png"
        let chromium = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(keel.directory)/chromium",
            "--window-size=1200,900", "--virtual-time-budget=3000",
        ]
        let (shotStatus, _) = try Self.run(
            "/usr/bin/chromium", chromium + ["--screenshot=\(screenshot)", url], in: keel.directory, seconds: 90)
        #expect(shotStatus == 0)
        let (domStatus, dom) = try Self.run(
            "/usr/bin/chromium", chromium + ["--dump-dom", url], in: keel.directory, seconds: 90)
        #expect(domStatus == 0)
        // The pool's own answer at the same moment, read straight from its stats socket.
        let raw = try TestSocket(unixPath: String(statsAddress.dropFirst("unix:".count))).readToEOF()
        let stats = try #require(try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any])
        let workers = stats["workers"] as? [[String: Any]] ?? []
        let busyWorkers = workers.filter { $0["status"] as? String == "busy" }.count
        let running = workers.flatMap { $0["threads"] as? [[String: Any]] ?? [] }.compactMap {
            $0["request"] as? String
        }

        #expect(dom.contains("data-pool=\"app\""), "\(dom.prefix(2000))")
        #expect(dom.contains("data-workers=\"\(workers.count)\""))
        #expect(dom.contains("data-busy-workers=\"\(busyWorkers)\""), "stats say \(busyWorkers) busy workers")
        #expect(dom.contains("data-busy-threads=\"3\""))
        #expect(Set(running) == Set(lines))
        for line in lines { #expect(dom.contains("<span class=\"req\">\(line)</span>"), "\(line) on the page") }
        #expect(dom.components(separatedBy: "data-state=\"busy\" data-worker-id").count - 1 == 3)
        #expect(dom.contains("id=\"keel-connections\">"))
        #expect(!dom.contains("data-updates=\"0\""), "the script ran and rendered the data")

        // A PNG of the window's size with something drawn.
        let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: screenshot)))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }
        let height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect((width, height) == (1200, 900))
        #expect(png.count > 10_000, "a blank page compresses to a few hundred bytes")

        // INT: the held requests are not waited for.
        _ = clients
        #expect(try keel.stop(signal: SIGINT) == 0)
    }

    /// The fields keel-pool is gaining (threads per worker, async, cheaper, recent recycles) reach the page when
    /// present; a stuck stats server costs the page an error line, never the JSON's latency.
    @Test func outsidePoolsWithNewFieldsAndAStuckOne() throws {
        let directory = try Harness.makeTempDirectory()
        let document = """
            {"version": "keel-pool", "pid": 4242, "threads_per_worker": 2, "async": false,
             "cheaper": {"algo": "spare", "min": 1, "max": 4, "target": 2},
             "recent_recycles": [{"id": 3, "pid": 4100, "reason": "max-requests", "ago_ms": 2500}],
             "sockets": [{"name": "/run/app.sock", "proto": "uwsgi", "queue": 7}],
             "workers": [
              {"id": 1, "pid": 4301, "status": "busy", "requests": 9, "in_flight": 1, "rss_mib": 30,
               "threads": [{"id": 0, "status": "busy", "request": "POST /upload HTTP/1.1", "running_ms": 1500},
                           {"id": 1, "status": "idle"}]},
              {"id": 2, "pid": 4302, "status": "stopping", "requests": 100, "in_flight": 0, "rss_mib": 31,
               "threads": [{"id": 0, "status": "idle"}, {"id": 1, "status": "idle"}]}
             ]}
            """
        let good = try FakeStatsServer(path: directory + "/good.sock", document: document)
        let stuck = try FakeStatsServer(path: directory + "/stuck.sock", document: nil)
        defer {
            good.stop()
            stuck.stop()
        }
        let keel = try FrontUnderTest(
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [status]
                [status.pools]
                outside = "{DIR}/good.sock"
                stuck = "{DIR}/stuck.sock"
                [[route]]
                return = 200
                """, directory: directory)
        try Harness.waitUntil("the refresh to give up on the stuck pool", seconds: 10) {
            try keel.get("/keel/status.json").text.contains("no whole answer within")
        }
        // Served from the last refresh: fast even while a refresh waits on the stuck pool.
        for _ in 0..<5 {
            let started = Date()
            #expect(try keel.get("/keel/status.json").status == 200)
            #expect(Date().timeIntervalSince(started) < 0.5)
        }
        let url = "http://127.0.0.1:\(keel.port)/keel/status"
        let chromium = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory)/chromium",
            "--window-size=1200,900", "--virtual-time-budget=3000",
        ]
        let screenshot = directory + "/status.png"
        _ = try Self.run(
            "/usr/bin/chromium", chromium + ["--screenshot=\(screenshot)", url], in: directory, seconds: 90)
        let (status, dom) = try Self.run(
            "/usr/bin/chromium", chromium + ["--dump-dom", url], in: directory, seconds: 90)
        #expect(status == 0)
        #expect(
            dom.contains("data-pool=\"outside\" data-workers=\"2\" data-busy-workers=\"1\" data-busy-threads=\"1\""),
            "\(dom)")
        #expect(dom.contains("2 workers × 2 threads"))
        #expect(dom.contains("cheaper spare 1–4 (target 2)"))
        #expect(dom.contains("data-socket=\"/run/app.sock\" data-queue=\"7\""))
        #expect(dom.contains("<span class=\"req\">POST /upload HTTP/1.1</span><span class=\"ms\">1.5 s</span>"))
        #expect(dom.components(separatedBy: "data-state=\"stopping\" data-worker-id=\"2\"").count - 1 == 2)
        #expect(dom.contains("data-recycle-id=\"3\" data-pid=\"4100\">worker 3 (pid 4100): max-requests, 2.5 s ago"))
        #expect(dom.contains("data-pool=\"stuck\" data-error=\"no whole answer within 800ms\""))
        if let copy = ProcessInfo.processInfo.environment["KEEL_STATUS_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: screenshot, toPath: copy)
        }
        #expect(try keel.stop() == 0)
    }

    @Test func statusPageIsRefusedOutsideAllow() throws {
        let keel = try FrontUnderTest(config: Self.statusConfig(allow: "\"10.0.0.0/8\""))
        #expect(try keel.get("/keel/status").status == 403)
        #expect(try keel.get("/keel/status.json").status == 403)
        // Other paths still go to the routes.
        #expect(try keel.get("/other?ms=1").status == 200)
        #expect(try keel.stop() == 0)
    }

    @Test func flagsTurnBothOnAndLoopbackSeesThePage() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let metricsPort = try Harness.freePort()
        let keel = try FrontUnderTest([
            "--uwsgi", "unix:" + pool.socketPath!, "--metrics", "127.0.0.1:\(metricsPort)", "--status", "/_status",
        ])
        #expect(try keel.get("/").status == 200)
        let page = try keel.get("/_status")
        #expect(page.status == 200)
        #expect(page.text.contains("\"/_status.json\""))
        let json = try keel.get("/_status.json")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any])
        #expect(document["pools"] as? [Any] != nil)
        let requests = try Self.scrape(metricsPort)
        #expect(Self.samples(requests)[#"keel_http_requests_total{route="/",method="GET",status="2xx"}"#] == 1)
        #expect(try HTTPClient.get(port: metricsPort, "/other").status == 404)
        #expect(try keel.stop() == 0)
    }
}
