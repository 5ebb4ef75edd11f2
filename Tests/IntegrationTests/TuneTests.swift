import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `keel-pool tune` end to end on the WSGI example app: threads for the sleeping route, one thread for the CPU-bound
/// one, reports Python can parse, and no process left behind, also after INT mid-run. Serialized: two tune runs
/// at once would measure each other.
@Suite("keel-pool tune", .serialized, .timeLimit(.minutes(3)))
struct TuneTests {
    /// The example app copied into a fresh temp directory, so every process of a run has that path in its cmdline.
    final class TuneRun: @unchecked Sendable {
        let directory: String
        let appPath: String
        var outDirectory: String { directory + "/out" }

        init() throws {
            directory = try Harness.makeTempDirectory()
            appPath = directory + "/app.py"
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("deploy/examples/wsgi/app.py")
            try FileManager.default.copyItem(atPath: source.path, toPath: appPath)
        }

        func start(_ arguments: [String]) throws -> ManagedProcess {
            try ManagedProcess(
                Harness.keelPoolPath,
                ["tune", "--wsgi-file", appPath, "--allow-root", "--out", outDirectory] + arguments,
                logPath: directory + "/tune.log")
        }

        /// Pids of every process whose command line names this run's directory (pools and their workers).
        var leftovers: [pid_t] {
            let me = getpid()
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { pid_t($0) }.filter { pid in
                guard pid != me, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
                    return false
                }
                return String(decoding: data, as: UTF8.self).contains(directory)
            }
        }

        func expectNothingLeftBehind() throws {
            try Harness.waitUntil("every process of the run to be gone", seconds: 5) { leftovers.isEmpty }
        }

        /// Runs a Python script with the out directory as its argument; returns what it printed.
        func python(_ script: String) throws -> String {
            let process = try ManagedProcess(
                "/usr/bin/python3", ["-c", script, outDirectory], logPath: directory + "/python.log")
            let code = try process.waitForExit(seconds: 20)
            guard code == 0 else { throw HarnessError("python failed: \(process.log)") }
            return process.log
        }

        /// Reads the reports with Python's own parsers: json.load, html.parser, xml.etree on the inline SVG.
        func checkReports() throws -> (status: String, processes: Int, perProcess: Int, measured: Int) {
            let script = #"""
                import json, sys, xml.etree.ElementTree as ET
                from html.parser import HTMLParser
                out = sys.argv[1]
                document = json.load(open(out + '/tune.json'))
                html = open(out + '/tune-report.html').read()
                class Tags(HTMLParser):
                    def __init__(self):
                        super().__init__()
                        self.tags = []
                    def handle_starttag(self, tag, attrs):
                        self.tags.append(tag)
                tags = Tags()
                tags.feed(html)
                tags.close()
                assert 'svg' in tags.tags and 'table' in tags.tags, tags.tags
                svg = ET.fromstring(html[html.index('<svg'):html.index('</svg>') + len('</svg>')])
                assert svg.tag == '{http://www.w3.org/2000/svg}svg', svg.tag
                bars = [e for e in svg.iter('{http://www.w3.org/2000/svg}rect')]
                assert len(bars) == len(document['measurements']) + 1, (len(bars), len(document['measurements']))
                best = document['recommended'] or {'shape': {'processes': 0, 'per_process': 0}}
                print(document['status'], best['shape']['processes'], best['shape']['per_process'], len(document['measurements']))
                """#
            let checker = try ManagedProcess(
                "/usr/bin/python3", ["-c", script, outDirectory], logPath: directory + "/check.log")
            let code = try checker.waitForExit(seconds: 20)
            #expect(code == 0, "python's check failed: \(checker.log)")
            let fields = checker.log.split(whereSeparator: \.isWhitespace).map(String.init)
            guard code == 0, fields.count == 4, let p = Int(fields[1]), let t = Int(fields[2]), let n = Int(fields[3])
            else {
                throw HarnessError("unexpected check output: \(checker.log)")
            }
            return (fields[0], p, t, n)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test func sleepingAppGetsMoreThanOneThread() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            let tune = try run.start(["--url", "/sleep?s=0.05", "--concurrency", "16", "--budget", "30s"])
            let code = try tune.waitForExit(seconds: 60)
            #expect(code == 0, "tune said: \(tune.log)")
            #expect(tune.log.contains("recommended ("))
            let report = try run.checkReports()
            #expect(report.status == "complete" || report.status == "budget_ended")
            #expect(report.perProcess > 1, "tune said: \(tune.log)")
            #expect(tune.log.contains("--processes \(report.processes) --threads \(report.perProcess)"))
            try run.expectNothingLeftBehind()
        }
    }

    @Test func cpuBoundAppGetsOneThread() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            let tune = try run.start(["--url", "/cpu?ms=2", "--concurrency", "8", "--budget", "30s"])
            let code = try tune.waitForExit(seconds: 60)
            #expect(code == 0, "tune said: \(tune.log)")
            let report = try run.checkReports()
            #expect(report.perProcess == 1, "tune said: \(tune.log)")
            #expect(report.processes >= 1)
            try run.expectNothingLeftBehind()
        }
    }

    @Test func interruptStopsEveryPoolAndKeepsWhatWasMeasured() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            let tune = try run.start(["--url", "/sleep?s=0.05", "--budget", "30s"])
            // Mid-run: after the first measurement, while the next pool runs.
            try Harness.waitUntil("the first measurement", seconds: 30) {
                FileManager.default.fileExists(atPath: run.outDirectory + "/tune.json")
                    && run.leftovers.count > 2
            }
            let code = try tune.stop(signal: SIGINT, seconds: 15)
            #expect(code == 128 + SIGINT, "tune said: \(tune.log)")
            #expect(tune.log.contains("stopped by signal 2"))
            let report = try run.checkReports()
            #expect(report.status == "interrupted")
            #expect(report.measured >= 1)
            try run.expectNothingLeftBehind()
        }
    }

    @Test func appThatCannotStartShowsKeelPoolsOwnError() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            try "import no_such_module_for_tune\n".write(toFile: run.appPath, atomically: true, encoding: .utf8)
            let tune = try run.start(["--url", "/", "--budget", "20s"])
            let code = try tune.waitForExit(seconds: 40)
            #expect(code != 0)
            #expect(tune.log.contains("keel-pool exited with code"), "tune said: \(tune.log)")
            #expect(tune.log.contains("no_such_module_for_tune"), "tune said: \(tune.log)")
            try run.expectNothingLeftBehind()
        }
    }

    @Test func everyRequestFailingIsSaid() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            let tune = try run.start(["--url", "/no-such-route", "--budget", "20s"])
            let code = try tune.waitForExit(seconds: 40)
            #expect(code == 1)
            #expect(tune.log.contains("every request failed on 2×1") || tune.log.contains("every request failed on"))
            #expect(tune.log.contains("HTTP 404"), "tune said: \(tune.log)")
            try run.expectNothingLeftBehind()
        }
    }

    @Test func checksThePickAcrossTheRangeAndOpenLoopAtTheRate() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            let tune = try run.start(["--url", "/", "--concurrency", "2-8", "--rate", "50", "--budget", "25s"])
            let code = try tune.waitForExit(seconds: 50)
            #expect(code == 0, "tune said: \(tune.log)")
            let checks = try run.python(
                #"""
                import json, sys
                document = json.load(open(sys.argv[1] + '/tune.json'))
                for check in document['verification']:
                    print(check['concurrency'] or 0, check['offered_rate'] or 0, check['requests_per_second'],
                          check['p50_ms'], check['errors'])
                """#)
            let rows = checks.split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }
            #expect(rows.count == 2, "checks: \(checks), tune said: \(tune.log)")
            guard rows.count == 2, rows.allSatisfy({ $0.count == 5 }) else { return }
            #expect(rows[0][0] == 2)
            #expect(rows[1][1] == 50)
            // Open loop: the rate is what was offered, and a hello answer waits for no queue.
            #expect(abs(rows[1][2] - 50) < 5, "checks: \(checks)")
            #expect(rows[1][3] < 20, "checks: \(checks)")
            #expect(rows.allSatisfy { $0[4] == 0 })
            try run.expectNothingLeftBehind()
        }
    }

    @Test func unreachableP99TargetRecommendsNothing() async throws {
        try await onItsOwnThread {
            let run = try TuneRun()
            let tune = try run.start(["--url", "/sleep?s=0.05", "--p99-target", "10", "--budget", "8s"])
            let code = try tune.waitForExit(seconds: 30)
            #expect(code == 1)
            #expect(tune.log.contains("no shape met --p99-target 10.0 ms"), "tune said: \(tune.log)")
            #expect(!tune.log.contains("recommended ("))
            #expect(try run.checkReports().processes == 0)
            try run.expectNothingLeftBehind()
        }
    }

    @Test(arguments: [
        (["--url", "sleep"], "--url sleep: a URL path must start with '/'"),
        (["--url", "/", "--concurrency", "64-8"], "--concurrency 64-8: the range's low end is above its high end"),
        (["--url", "/", "--budget", "soon"], "--budget soon: expected a duration"),
        (["--url", "/", "--threads", "4"], "--threads: keel-pool tune sets --threads itself"),
        ([], "give at least one --url PATH"),
    ])
    func badInputIsOneClearLine(arguments: [String], message: String) throws {
        let run = try TuneRun()
        let tune = try run.start(arguments)
        let code = try tune.waitForExit(seconds: 20)
        #expect(code != 0)
        #expect(tune.log.contains(message), "tune said: \(tune.log)")
    }
}
