import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// HTTP/2 at the front, with real peers: curl (`--http2` over TLS, `--http2-prior-knowledge` on h2c), h2load, and
/// Python scripts that write frames with the `h2` package (Tests/h2/) for the attacks and the GOAWAY lifecycle.
@Suite("keel: HTTP/2", .serialized, .timeLimit(.minutes(4)))
struct FrontHTTP2Tests {
    /// A TLS listener ({PORT}, h2 by ALPN) and an h2c one ({PORT2}) in front of the example WSGI app, the built-in
    /// stream app and a static directory.
    static func config(app: String, stream: String, extraLimits: String = "", metrics: String = "") -> String {
        """
        [[listen]]
        address = "127.0.0.1:{PORT}"
        tls = true

        [[listen]]
        address = "127.0.0.1:{PORT2}"
        h2c = true

        [tls]
        [[tls.certificate]]
        cert = "{DIR}/cert.pem"
        key = "{DIR}/cert.key"

        [limits]
        client_max_body_size = "16m"
        \(extraLimits)

        [gzip]
        enabled = true

        [log]
        access = "{DIR}/access.log"
        level = "info"
        \(metrics)

        [[route]]
        path = "/static/"
        static = "{DIR}/static"

        [[route]]
        path = "/stream"
        uwsgi = "unix:\(stream)"

        [[route]]
        path = "/"
        uwsgi = "unix:\(app)"
        """
    }

    /// Holds the processes for the test's duration (dropping a pool stops it).
    struct Fixture {
        let keel: FrontUnderTest
        let app: PoolUnderTest
        let stream: PoolUnderTest
        var tls: String { "https://127.0.0.1:\(keel.port)" }
        var h2c: String { "http://127.0.0.1:\(keel.port2)" }
    }

    static let exampleApp = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/examples/wsgi/app.py").standardizedFileURL.path
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../h2").standardizedFileURL.path

    static func start(extraLimits: String = "", metrics: String = "") throws -> Fixture {
        // 128 threads: the 100-stream test holds 100 requests in the app at once.
        let app = try PoolUnderTest(
            http: false, uwsgi: true, ["--wsgi-file", exampleApp, "--processes", "2", "--threads", "64"])
        let stream = try PoolUnderTest(http: false, uwsgi: true, ["--app", "stream", "--threads", "4"])
        let directory = try Harness.makeTempDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/static", withIntermediateDirectories: true)
        _ = try TLSTools.makeCertificate(in: directory, name: "cert", names: ["localhost"])
        let keel = try FrontUnderTest(
            config: config(app: app.socketPath!, stream: stream.socketPath!, extraLimits: extraLimits, metrics: metrics),
            directory: directory)
        return Fixture(keel: keel, app: app, stream: stream)
    }

    static func shell(_ script: String, seconds: Double = 60) throws -> (code: Int32, output: String) {
        try TLSTools.shell(script, seconds: seconds)
    }

    /// The test venv's Python with the `h2` package (Tests/run.sh installs it).
    static func python() throws -> String {
        let python = AsyncTestApps.venv + "/bin/python3"
        let check = try shell("\(python) -c 'import h2, hpack'", seconds: 20)
        guard check.code == 0 else { throw HarnessError("the test venv lacks the h2 package: run Tests/run.sh (\(check.output))") }
        return python
    }

    static func json(_ text: String) throws -> [String: Any] {
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { throw HarnessError("no JSON line in:\n\(text)") }
        return object
    }

    // MARK: requests

    @Test func everyRequestShapeOverTLSAndH2C() throws {
        let fixture = try Self.start()
        let directory = fixture.keel.directory
        let payload = testBytes(count: 1 << 20, seed: 7)
        try Data(payload).write(to: URL(fileURLWithPath: directory + "/body.bin"))
        let big = testBytes(count: 20 << 20, seed: 8)
        try Data(big).write(to: URL(fileURLWithPath: directory + "/static/big.bin"))
        for (base, flag) in [(fixture.tls, "--http2"), (fixture.h2c, "--http2-prior-knowledge")] {
            let curl = "curl -sk --max-time 30 \(flag)"
            let hello = try Self.shell("\(curl) -w ' %{http_version}' \(base)/")
            #expect(hello.output == "Hello world!\n 2", "\(base): \(hello.output)")

            // A body with Content-Length, and one without (curl sends no length for a chunked upload over h2).
            for framing in ["", "-H 'Transfer-Encoding: chunked'"] {
                let out = directory + "/echo.out"
                let post = try Self.shell("\(curl) \(framing) --data-binary @\(directory)/body.bin -o \(out) -w '%{http_version} %{http_code}' \(base)/echo")
                #expect(post.output == "2 200", "\(base) \(framing): \(post.output)")
                #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(payload), "\(base) \(framing): the echo differs")
            }

            let env = try Self.shell("\(curl) -H 'Accept-Encoding: gzip' -D - -o \(directory)/env.gz \(base)/env; zcat \(directory)/env.gz")
            #expect(env.output.contains("content-encoding: gzip"), "\(env.output)")
            #expect(env.output.contains("SERVER_PROTOCOL = 'HTTP/2.0'"), "\(env.output)")

            let file = directory + "/big.out"
            let download = try Self.shell("\(curl) -o \(file) -w '%{http_version} %{http_code} %{size_download}' \(base)/static/big.bin")
            #expect(download.output == "2 200 \(20 << 20)", "\(download.output)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data(big), "\(base): the static file differs")

            // The stream app sends 64 chunks of 64 KiB with no length: DATA frames as they come.
            let streamed = try Self.shell("\(curl) -o /dev/null -w '%{http_version} %{http_code} %{size_download}' '\(base)/stream?chunks=64&size=65536'")
            #expect(streamed.output == "2 200 \(64 * 65536)", "\(streamed.output)")
        }
        try Harness.waitUntil("the access log's HTTP/2 lines") {
            let log = (try? String(contentsOfFile: directory + "/access.log", encoding: .utf8)) ?? ""
            return log.contains("\"POST /echo HTTP/2.0\" 200 \(1 << 20)") && log.contains("\"GET /static/big.bin HTTP/2.0\" 200")
        }
    }

    @Test func aHundredStreamsOnOneConnectionRunTogether() throws {
        let fixture = try Self.start()
        // s= last: the example app reads everything after it as the seconds.
        let urls = (0..<100).map { "-o /dev/null '\(fixture.tls)/sleep?n=\($0)&s=1'" }.joined(separator: " ")
        let started = Date()
        // -Z multiplexes every transfer on one connection; %{num_connects} is 1 for the first and 0 for the rest.
        let result = try Self.shell(
            "curl -sk --http2 -Z --parallel-max 100 --max-time 30 -w '%{http_code} %{num_connects}\\n' \(urls) 2>/dev/null")
        let elapsed = Date().timeIntervalSince(started)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 100, "\(result.output)")
        #expect(lines.allSatisfy { $0.hasPrefix("200 ") }, "\(result.output)")
        #expect(lines.map { Int($0.split(separator: " ")[1]) ?? 9 }.reduce(0, +) == 1, "not one connection: \(result.output)")
        // One after another they would take 100 s; together about one.
        #expect(elapsed < 15, "100 one-second streams took \(elapsed) s")
    }

    @Test func alpnPicksH2ForCurlAndHTTP11WhenAskedOrTurnedOff() throws {
        let fixture = try Self.start()
        let h2 = try Self.shell("curl -sk -v -o /dev/null \(fixture.tls)/ 2>&1")
        #expect(h2.output.contains("ALPN: server accepted h2"), "\(h2.output)")
        let h1 = try Self.shell("curl -sk -v --http1.1 -o /dev/null \(fixture.tls)/ 2>&1")
        #expect(h1.output.contains("ALPN: server accepted http/1.1"), "\(h1.output)")
        // The h2c listener still speaks HTTP/1.1 to clients without prior knowledge.
        let plain = try Self.shell("curl -s -o /dev/null -w '%{http_version}' \(fixture.h2c)/")
        #expect(plain.output == "1.1")

        let directory = try Harness.makeTempDirectory()
        _ = try TLSTools.makeCertificate(in: directory, name: "cert", names: ["localhost"])
        let off = try FrontUnderTest(
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                tls = true
                http2 = false
                [[listen]]
                address = "127.0.0.1:{PORT2}"
                tls = true
                [tls]
                [[tls.certificate]]
                cert = "{DIR}/cert.pem"
                key = "{DIR}/cert.key"
                [[route]]
                path = "/"
                return = 200
                """, directory: directory)
        let refused = try Self.shell("curl -sk -v --http2 -o /dev/null https://127.0.0.1:\(off.port)/ 2>&1")
        #expect(refused.output.contains("ALPN: server accepted http/1.1"), "\(refused.output)")
        let other = try Self.shell("curl -sk -v --http2 -o /dev/null https://127.0.0.1:\(off.port2)/ 2>&1")
        #expect(other.output.contains("ALPN: server accepted h2"), "\(other.output)")
    }

    @Test func h2loadTenThousandRequestsOverTenConnectionsOfAHundredStreams() throws {
        let fixture = try Self.start()
        // Over TLS (h2c streams take the same path after the preface; curl and the attacks cover h2c).
        for base in [fixture.tls] {
            let run = try Self.shell("h2load -n 10000 -c 10 -m 100 \(base)/ 2>&1", seconds: 120)
            #expect(run.code == 0, "\(run.output)")
            #expect(run.output.contains("10000 succeeded, 0 failed, 0 errored, 0 timeout"), "\(run.output)")
            #expect(run.output.contains("status codes: 10000 2xx"), "\(run.output)")
        }
    }

    @Test func aStalledStreamNeitherHoldsUpTheOthersNorIsBufferedWhole() throws {
        let python = try Self.python()
        let fixture = try Self.start()
        let pid = fixture.keel.process.pid
        let before = try #require(Harness.residentKiB(pid))
        // Stream 1 asks for 256 MiB and never gets stream window past its first 64 KiB; stream 3 asks for / a second later.
        let client = try ManagedProcess(
            python,
            ["\(Self.scripts)/h2lifecycle.py", "--port", "\(fixture.keel.port2)", "--slow-stream", "/stream?chunks=4096&size=65536",
             "--path", "/", "--linger", "2", "--timeout", "10"],
            logPath: fixture.keel.directory + "/slow.log")
        var peak = before
        while client.isRunning {
            peak = max(peak, Harness.residentKiB(pid) ?? 0)
            usleep(50_000)
        }
        _ = try client.waitForExit(seconds: 5)
        let outcome = try Self.json(client.log)
        let streams = outcome["streams"] as? [String: [String: Any]] ?? [:]
        #expect(streams["3"]?["status"] as? Int == 200 && streams["3"]?["ended"] as? Bool == true, "\(client.log)")
        #expect((outcome["seconds"] as? Double ?? 99) < 6, "stream 3 waited for stream 1: \(client.log)")
        // Stream 1 got its window's worth and no more; keel read little more of it from the app than it could send.
        #expect((streams["1"]?["body_bytes"] as? Int ?? 0) <= 65535, "\(client.log)")
        #expect(streams["1"]?["ended"] as? Bool == false, "\(client.log)")
        // Two seconds of a stalled 256 MiB response: keel holds about its socket and stream buffers, not the body.
        #expect(peak - before < 48 * 1024, "keel grew by \(peak - before) KiB while a 256 MiB response was stalled")
    }

    // MARK: attacks

    /// Each attack from Tests/h2/h2attack.py is cut off with a log line, and curl is served meanwhile and after.
    @Test(arguments: [
        ("rapid-reset", ["rapid reset"]),
        ("continuation-flood", ["CONTINUATION flood", "header block over max_header_size"]),
        ("big-headers", ["header block over max_header_size", "CONTINUATION flood"]),
        ("settings-flood", ["settings or ping flood", "does not read keel's replies"]),
        ("ping-flood", ["settings or ping flood", "does not read keel's replies"]),
        ("hpack-bomb", ["header block over max_header_size", "cannot be decoded"]),
        ("hpack-table-size", ["cannot be decoded"]),
        ("even-stream", ["broke the HTTP/2 protocol"]),
    ])
    func attackIsCutOffWhileOthersAreServed(attack: String, expected: [String]) throws {
        let python = try Self.python()
        let fixture = try Self.start()
        // A request in flight over HTTP/2 on its own connection through the attack, and requests during and after it.
        let directory = fixture.keel.directory
        let inFlight = try ManagedProcess(
            "/bin/sh", ["-c", "curl -sk --http2 --max-time 20 -w ' %{http_code}' '\(fixture.tls)/sleep?s=1.5'"],
            logPath: directory + "/inflight.log")
        try Harness.waitUntil("the request in flight to reach the app", seconds: 10) { fixture.app.log.contains("/sleep?s=1.5") }
        let attacker = try ManagedProcess(
            python, ["\(Self.scripts)/h2attack.py", attack, "--port", "\(fixture.keel.port2)", "--timeout", "20"],
            logPath: directory + "/attack.log")
        var served = 0
        while attacker.isRunning || served < 3 {
            let curl = try Self.shell("curl -sk --http2 --max-time 10 \(fixture.tls)/", seconds: 15)
            #expect(curl.output == "Hello world!\n", "while \(attack): \(curl.output)")
            served += 1
            if served > 200 { break }
        }
        let code = try attacker.waitForExit(seconds: 30)
        let outcome = try Self.json(attacker.log)
        #expect(code == 0 && outcome["cut_off"] as? Bool == true, "\(attack) was not cut off: \(attacker.log)")
        // NIO's GOAWAY alone leaves the socket open: keel must close it.
        #expect(outcome["closed"] as? Bool == true, "\(attack): the connection stayed open: \(attacker.log)")
        try Harness.waitUntil("\(attack)'s log line", seconds: 5) {
            expected.contains { fixture.keel.log.contains($0) }
        }
        #expect(fixture.keel.log.contains("GOAWAY("), "\(fixture.keel.log)")
        #expect(try inFlight.waitForExit(seconds: 20) == 0)
        #expect(inFlight.log == "Hello world!\n 200", "the request in flight during \(attack): \(inFlight.log)")
    }

    // MARK: lifecycle

    @Test(arguments: ["TERM", "HUP"])
    func goAwayLetsTheStreamInFlightFinish(signal: String) throws {
        let python = try Self.python()
        let fixture = try Self.start()
        let run = try Self.shell(
            "\(python) \(Self.scripts)/h2lifecycle.py --tls --port \(fixture.keel.port) --path '/sleep?s=1.5' --signal \(signal) --pid \(fixture.keel.process.pid)")
        let outcome = try Self.json(run.output)
        let goaways = outcome["goaways"] as? [[String: Any]] ?? []
        // NIO's graceful close: GOAWAY(2^31-1) and a PING, then GOAWAY with the last stream id once the PING is acked.
        #expect(goaways.first?["error_code"] as? Int == 0, "\(run.output)")
        #expect(goaways.last?["last_stream_id"] as? Int == 1, "\(run.output)")
        #expect(outcome["goaway_before_end"] as? Bool == true, "\(run.output)")
        #expect(outcome["status"] as? Int == 200 && outcome["body_bytes"] as? Int == 13, "\(run.output)")
        #expect(outcome["stream_ended"] as? Bool == true && outcome["closed"] as? Bool == true, "\(run.output)")
        if signal == "TERM" {
            #expect(try fixture.keel.process.waitForExit(seconds: 20) == 0)
        } else {
            let next = try Self.shell("curl -sk --http2 -w ' %{http_version}' \(fixture.tls)/")
            #expect(next.output == "Hello world!\n 2", "after HUP: \(next.output)")
        }
    }

    @Test func maxRequestsPerConnectionAndIdleTimeout() throws {
        let python = try Self.python()
        let fixture = try Self.start(extraLimits: "http2_max_requests = 3\nkeepalive_timeout = \"1s\"\ngraceful_timeout = \"1s\"")
        // Over TLS: curl 7.88 does not send a second request on an h2c prior-knowledge connection (to nginx neither).
        let urls = (0..<7).map { "-o /dev/null \(fixture.tls)/?n=\($0)" }.joined(separator: " ")
        // One at a time on a multiplexing curl: a GOAWAY after every third stream sends it to a new connection.
        let result = try Self.shell("curl -sk --http2 -w '%{http_code} %{num_connects}\\n' \(urls)")
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 7 && lines.allSatisfy { $0.hasPrefix("200 ") }, "\(result.output)")
        #expect(lines.map { Int($0.split(separator: " ")[1]) ?? 9 }.reduce(0, +) == 3, "\(result.output)")

        // Idle, with the client acking the GOAWAY's PING (NIO closes) and without (keel's own deadline closes).
        for flags in ["", "--no-ping-ack"] {
            let idle = try Self.shell("\(python) \(Self.scripts)/h2lifecycle.py --idle \(flags) --port \(fixture.keel.port2) --timeout 10")
            let outcome = try Self.json(idle.output)
            #expect(outcome["closed"] as? Bool == true, "\(flags): \(idle.output)")
            #expect((outcome["goaways"] as? [[String: Any]])?.isEmpty == false, "\(flags): \(idle.output)")
            #expect((outcome["seconds"] as? Double ?? 99) < 5, "\(flags): \(idle.output)")
        }
    }

    /// A client that never answers the GOAWAY's PING is still closed after graceful_timeout when HUP sends it GOAWAY.
    @Test func hupClosesAClientThatNeverAcksWithinTheGrace() throws {
        let python = try Self.python()
        let fixture = try Self.start(extraLimits: "graceful_timeout = \"1s\"")
        let run = try Self.shell(
            "\(python) \(Self.scripts)/h2lifecycle.py --idle --no-ping-ack --signal HUP --pid \(fixture.keel.process.pid) --port \(fixture.keel.port2) --timeout 10")
        let outcome = try Self.json(run.output)
        #expect((outcome["goaways"] as? [[String: Any]])?.first?["error_code"] as? Int == 0, "\(run.output)")
        #expect(outcome["closed"] as? Bool == true, "\(run.output)")
        // keepalive_timeout is 75 s here: only the grace after HUP's GOAWAY can have closed it.
        #expect((outcome["seconds"] as? Double ?? 99) < 5, "\(run.output)")
        try Harness.waitUntil("the grace's log line", seconds: 5) {
            fixture.keel.log.contains("did not finish its HTTP/2 streams within graceful_timeout")
        }
    }

    /// A GET whose HEADERS lack END_STREAM times out like a stalled body (408, then RST_STREAM(NO_ERROR)); a Host
    /// that differs from :authority is a malformed request (RST_STREAM(PROTOCOL_ERROR)), the same server's is not.
    @Test func unfinishedAndMismatchedStreams() throws {
        let python = try Self.python()
        let fixture = try Self.start(extraLimits: "client_body_timeout = \"1s\"")
        let open = try Self.shell(
            "\(python) \(Self.scripts)/h2lifecycle.py --open-request --path / --port \(fixture.keel.port2) --timeout 10")
        let unfinished = try Self.json(open.output)
        #expect(unfinished["status"] as? Int == 408, "\(open.output)")
        #expect(unfinished["reset"] as? Int == 0, "the early answer's reset must be NO_ERROR: \(open.output)")
        #expect((unfinished["seconds"] as? Double ?? 99) < 5, "\(open.output)")

        let other = try Self.shell(
            "\(python) \(Self.scripts)/h2lifecycle.py --host-header elsewhere.example --path / --port \(fixture.keel.port2) --timeout 5")
        let mismatched = try Self.json(other.output)
        #expect(mismatched["status"] == nil || mismatched["status"] is NSNull, "\(other.output)")
        #expect(mismatched["reset"] as? Int == 1, "PROTOCOL_ERROR expected: \(other.output)")
        #expect(fixture.keel.log.contains("differs from :authority"), "\(fixture.keel.log)")

        let same = try Self.shell(
            "\(python) \(Self.scripts)/h2lifecycle.py --host-header 127.0.0.1:\(fixture.keel.port2) --path / --port \(fixture.keel.port2) --timeout 5")
        let matched = try Self.json(same.output)
        #expect(matched["status"] as? Int == 200 && matched["stream_ended"] as? Bool == true, "\(same.output)")
    }

    // MARK: operations

    @Test func metricsAndStatusCountHTTP2ConnectionsStreamsAndCutOffs() throws {
        let python = try Self.python()
        let metricsPort = try Harness.freePort()
        let fixture = try Self.start(metrics: "\n[metrics]\nlisten = \"127.0.0.1:\(metricsPort)\"\n\n[status]\npath = \"/keel/status\"")
        let five = (0..<5).map { "-o /dev/null \(fixture.tls)/?n=\($0)" }.joined(separator: " ")
        _ = try Self.shell("curl -sk --http2 \(five)")
        let flood = try Self.shell("\(python) \(Self.scripts)/h2attack.py ping-flood --port \(fixture.keel.port2) --timeout 10")
        #expect(flood.code == 0, "\(flood.output)")
        try Harness.waitUntil("the metrics to count the streams and the cut-off", seconds: 10) {
            let text = try Self.shell("curl -s http://127.0.0.1:\(metricsPort)/metrics").output
            return text.contains("keel_http2_streams_total 5") && text.contains("keel_http2_cut_offs_total{reason=\"control_frame_flood\"} 1")
                || text.contains("keel_http2_cut_offs_total{reason=\"unread_replies\"} 1") && text.contains("keel_http2_streams_total 5")
        }
        let exposition = try Self.shell("curl -s http://127.0.0.1:\(metricsPort)/metrics").output
        #expect(exposition.contains("# HELP keel_http2_connections_active"), "\(exposition)")
        try Harness.waitUntil("the status JSON to count the streams", seconds: 10) {
            let json = try Self.shell("curl -s --http2-prior-knowledge \(fixture.h2c)/keel/status.json").output
            // 5 streams before, plus each poll's own (every poll is one more stream, so a late count never matches
            // one exact number): at least 6.
            guard let range = json.range(of: "\"http2_streams\": ") else { return false }
            return Int(json[range.upperBound...].prefix { $0.isNumber }).map { $0 >= 6 } ?? false
        }
    }
}
