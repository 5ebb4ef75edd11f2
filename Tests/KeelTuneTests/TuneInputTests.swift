import Testing

@testable import KeelTune

#if canImport(Glibc)
import Glibc
#endif

@Suite struct TuneInputTests {
    @Test(arguments: [
        ("120", 120.0), ("30s", 30), ("2m", 120), ("1m30s", 90), ("500ms", 0.5), ("1.5s", 1.5), ("1h", 3600),
    ])
    func durations(text: String, seconds: Double) throws {
        #expect(try TuneInput.duration(text, flag: "--budget") == seconds)
    }

    @Test(arguments: ["", "0", "-5s", "2x", "m", "s30", "30 s"])
    func badDurationsSayWhatToWrite(text: String) {
        #expect(
            throws: TuneInput.InputError(
                "--budget \(text): expected a duration such as 30s, 2m, 1m30s or plain seconds")
        ) {
            try TuneInput.duration(text, flag: "--budget")
        }
    }

    @Test(arguments: [("16", 16...16), ("8-64", 8...64), ("1-1", 1...1)])
    func ranges(text: String, range: ClosedRange<Int>) throws {
        #expect(try TuneInput.range(text, flag: "--concurrency") == range)
    }

    @Test(arguments: ["0", "-4", "8-", "a-b", "1-2-3", "", "200000"])
    func badRanges(text: String) {
        #expect(throws: TuneInput.InputError.self) { try TuneInput.range(text, flag: "--concurrency") }
    }

    @Test func reversedRangeIsNamed() {
        #expect(throws: TuneInput.InputError("--concurrency 64-8: the range's low end is above its high end")) {
            try TuneInput.range("64-8", flag: "--concurrency")
        }
    }

    @Test(arguments: [
        ("512M", 512 << 20), ("2G", 2 << 30), ("300MiB", 300 << 20), ("1048576", 1 << 20), ("64k", 64 << 10),
    ])
    func sizes(text: String, bytes: Int) throws {
        #expect(try TuneInput.size(text, flag: "--max-memory") == bytes)
    }

    @Test func pathsMustStartWithASlash() throws {
        #expect(try TuneInput.path("/sleep?s=0.05", flag: "--url") == "/sleep?s=0.05")
        #expect(throws: TuneInput.InputError("--url sleep: a URL path must start with '/', e.g. /sleep?s=0.05")) {
            try TuneInput.path("sleep", flag: "--url")
        }
        #expect(throws: TuneInput.InputError.self) { try TuneInput.path("/a b", flag: "--url") }
    }

    @Test func weightedPathFile() throws {
        let text = "# the mix\n3 /sleep?s=0.05\n\n1 /cpu?ms=2  # rare\n/\n"
        #expect(
            try TuneInput.weightedPaths(text, file: "u.txt") == [
                WeightedPath(weight: 3, path: "/sleep?s=0.05"), WeightedPath(weight: 1, path: "/cpu?ms=2"),
                WeightedPath(weight: 1, path: "/"),
            ])
        #expect(
            throws: TuneInput.InputError(
                "--urls u.txt line 2: expected WEIGHT PATH with a whole weight ≥ 1, got 'x /a'")
        ) {
            try TuneInput.weightedPaths("/ok\nx /a\n", file: "u.txt")
        }
        #expect(throws: TuneInput.InputError("--urls u.txt: no URL in the file")) {
            try TuneInput.weightedPaths("# nothing\n", file: "u.txt")
        }
    }

    @Test func appFlagsLeaveOutTunesOwn() {
        let arguments = [
            "--wsgi-file", "app.py", "--url", "/a", "--budget=30s", "--sweep", "--allow-root", "--concurrency", "8-64",
            "--out", "/tmp/x", "--chdir", "/srv",
        ]
        #expect(
            TuneConfiguration.appFlags(in: arguments) == ["--wsgi-file", "app.py", "--allow-root", "--chdir", "/srv"])
    }

    @Test func appFlagsBeforeTuneCount() {
        #expect(
            TuneConfiguration.appFlags(commandLine: ["--allow-root", "tune", "--url", "/", "--wsgi", "m", "--chdir", "tune"])
                == ["--allow-root", "--wsgi", "m", "--chdir", "tune"])
    }

    @Test func workerKindComesFromTheAppFlags() throws {
        #expect(try TuneConfiguration.appArguments(["--wsgi-file", "a.py"]).kind == .threads)
        #expect(try TuneConfiguration.appArguments(["--asgi", "m:app"]).kind == .asgi)
        let gevent = try TuneConfiguration.appArguments(["--wsgi-file", "a.py", "--gevent", "100", "--chdir", "/x"])
        #expect(gevent.kind == .gevent)
        #expect(gevent.arguments == ["--wsgi-file", "a.py", "--chdir", "/x"])
        #expect(try TuneConfiguration.appArguments(["--gevent=50", "--wsgi", "m"]).arguments == ["--wsgi", "m"])
    }

    @Test(arguments: ["--processes", "--threads", "--http-socket", "--stats", "--worker-connections", "-p"])
    func flagsTuneSetsAreRefused(flag: String) {
        #expect(throws: TuneError.self) { try TuneConfiguration.appArguments(["--wsgi-file", "a.py", flag, "2"]) }
    }

    @Test func windowsDeriveFromTheBudget() {
        func configuration(_ budget: Double) -> TuneConfiguration {
            TuneConfiguration(
                poolExecutable: "keel-pool", appArguments: [], kind: .threads, paths: [], concurrency: 16...16,
                budgetSeconds: budget, maxMemory: nil, p99TargetMs: nil, outDirectory: "/tmp", sweep: false,
                checkRate: nil, cores: 2)
        }
        #expect(configuration(120).warmupSeconds == 2.4)
        #expect(configuration(120).windowSeconds == 6)
        #expect(configuration(30).windowSeconds == 1.5)
        #expect(configuration(10_000).windowSeconds == 15)
    }
}

@Suite struct PercentilesTests {
    @Test func nearestRank() {
        let percentiles = Percentiles((1...100).reversed().map { UInt32($0) })
        #expect(percentiles.value(at: 50) == 50)
        #expect(percentiles.value(at: 99) == 99)
        #expect(percentiles.value(at: 100) == 100)
        #expect(percentiles.value(at: 0) == 1)
    }

    @Test func fewOrNoSamples() {
        #expect(Percentiles([]).value(at: 99) == 0)
        #expect(Percentiles([7]).value(at: 50) == 7)
        #expect(Percentiles([1, 1000]).value(at: 99) == 1000)
        #expect(Percentiles([2500]).milliseconds(at: 50) == 2.5)
    }
}

@Suite struct ProcSampleTests {
    @Test func cpuFromAStatLineWhoseNameHoldsSpacesAndParentheses() {
        let line = "4242 (python3 -u (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0 100 0 0"
        #expect(ProcSample.cpuMicros(statLine: line) == 300 * 1_000_000 / ProcSample.ticksPerSecond)
        #expect(ProcSample.cpuMicros(statLine: "garbage") == nil)
    }

    @Test func readsThisProcess() throws {
        let sample = try #require(ProcSample.read(pid: getpid()))
        #expect(sample.rssBytes > 0)
        #expect(sample.runQueueMicros >= 0)
    }
}
