import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a tune: asks the search for shapes, starts keel-pool in each, loads it, measures, and writes the reports.
/// Every pool it starts is stopped before the next starts, and before it returns (also on INT/TERM).
public final class TuneRunner {
    private let configuration: TuneConfiguration
    private var search: ShapeSearch
    private var progress: Progress
    private let startedAt = Clock.now
    private let deadline: Double
    private var verification: [Measurement] = []
    /// Seconds a pool took to start and stop, measured; the first guess before any.
    private var poolOverhead = 2.0

    private struct Interrupted: Error {}

    public init(configuration: TuneConfiguration) {
        self.configuration = configuration
        search = ShapeSearch(
            configuration: .init(
                cores: configuration.cores, kind: configuration.kind,
                clientConcurrency: configuration.concurrency.upperBound,
                maxMemory: configuration.maxMemory, p99TargetMs: configuration.p99TargetMs, sweep: configuration.sweep))
        progress = Progress(budget: configuration.budgetSeconds)
        deadline = startedAt + configuration.budgetSeconds
    }

    /// Runs to the end of the search or budget; prints the table and recommendation; returns the exit code.
    public func run() -> Int32 {
        do {
            try FileManager.default.createDirectory(
                atPath: configuration.outDirectory, withIntermediateDirectories: true)
        } catch {
            progress.line("cannot create --out \(configuration.outDirectory): \(error.localizedDescription)")
            return 1
        }
        TuneSignals.install()
        progress.line(
            "\(configuration.cores) cores, \(configuration.sweep ? "sweeping" : "searching") processes × "
                + "\(configuration.kind.unit) with \(configuration.concurrency.upperBound) client connections, "
                + "\(TerminalTable.format(configuration.warmupSeconds, 1)) s warm-up + "
                + "\(TerminalTable.format(configuration.windowSeconds, 1)) s window per shape, "
                + "budget \(TerminalTable.format(configuration.budgetSeconds, 0)) s; reports in \(configuration.outDirectory)"
        )
        var status = TuneReport.Status.complete
        var message: String?
        do {
            try searchShapes(status: &status)
            if status == .complete { try checkRecommendation() }
        } catch is Interrupted {
            status = .interrupted
            message = "stopped by signal \(TuneSignals.pending); the table holds what was measured before it"
        } catch {
            status = .failed
            message = "\(error)"
        }
        progress.finish()
        if message == nil && search.recommendation == nil && !search.measurements.isEmpty {
            message = noRecommendationReason()
        }
        let report = makeReport(status: status, message: message)
        writeReports(report)
        if !report.measurements.isEmpty { print(TerminalTable.render(report), terminator: "") }
        if let command = report.recommendedCommand {
            print(
                "recommended (\(TerminalTable.format(report.recommended!.requestsPerSecond, 1)) req/s):\n  \(command)")
        }
        print(
            "reports: \(configuration.outDirectory)/\(ReportFiles.htmlName), "
                + "\(configuration.outDirectory)/\(ReportFiles.jsonName)")
        // The one line that says what went wrong comes last, after stdout's table.
        fflush(nil)
        if let message { progress.line(message) }
        switch status {
        case .interrupted: return 128 + TuneSignals.pending
        case .failed: return 1
        case .complete, .budgetEnded, .running: return report.recommended == nil ? 1 : 0
        }
    }

    private func searchShapes(status: inout TuneReport.Status) throws {
        while let shape = search.next() {
            if TuneSignals.pending != 0 { throw Interrupted() }
            let cost = poolOverhead + configuration.warmupSeconds + configuration.windowSeconds
            if Clock.now + cost > deadline {
                status = .budgetEnded
                progress.line("budget ends: stopping before \(shape), the best so far is recommended")
                return
            }
            let measurement: Measurement
            do {
                measurement = try measure(
                    shape, patterns: [.closed(connections: configuration.concurrency.upperBound)])[0]
            } catch let error as TuneError where !search.measurements.isEmpty {
                // A later shape that cannot start (e.g. too many processes for the machine) is left out, not fatal.
                progress.line("\(shape): \(error.description); left out")
                search.record(
                    Measurement(
                        shape: shape, requestsPerSecond: 0, p50Ms: 0, p99Ms: 0, requests: 0, errors: 1,
                        rssPerWorker: 0, cpuPerRequestMs: 0, blockingRatio: 0))
                continue
            }
            search.record(measurement)
            progress.line(summary(measurement))
            writeReports(makeReport(status: .running, message: nil))
        }
    }

    /// The recommended shape once more: at the low end of the concurrency range, and open loop at a fixed rate.
    private func checkRecommendation() throws {
        guard let best = search.recommendation else { return }
        var patterns: [LoadPattern] = []
        if configuration.concurrency.lowerBound < configuration.concurrency.upperBound {
            patterns.append(.closed(connections: configuration.concurrency.lowerBound))
        }
        let rate = configuration.checkRate ?? best.requestsPerSecond * 0.8
        if rate > 0 { patterns.append(.open(rate: rate, connections: configuration.concurrency.upperBound * 2)) }
        let cost = poolOverhead + Double(patterns.count) * (configuration.warmupSeconds + configuration.windowSeconds)
        guard Clock.now + cost <= deadline else {
            progress.line("no time left in the budget to check \(best.shape) at other loads")
            return
        }
        do {
            verification = try measure(best.shape, patterns: patterns)
        } catch let error as TuneError {
            progress.line("checking \(best.shape): \(error.description)")
        }
        for check in verification { progress.line("check " + summary(check)) }
    }

    /// One pool in `shape`, loaded with each pattern in turn: warm-up, then a measured window.
    private func measure(_ shape: Shape, patterns: [LoadPattern]) throws -> [Measurement] {
        let httpPort = try LoopbackPort.free()
        var statsPort = try LoopbackPort.free()
        while statsPort == httpPort { statsPort = try LoopbackPort.free() }
        let name = "pool-\(shape.processes)x\(shape.perProcess)"
        let poolStart = Clock.now
        progress.bar(elapsed: poolStart - startedAt, doing: "starting \(shape)")
        let pool = try PoolProcess(
            executable: configuration.poolExecutable,
            arguments: configuration.appArguments
                + ["--http-socket", "127.0.0.1:\(httpPort)", "--stats", "127.0.0.1:\(statsPort)"]
                + shape.flags(kind: configuration.kind),
            httpPort: httpPort, statsPort: statsPort, logPath: configuration.outDirectory + "/\(name).log")
        var startup = 0.0
        defer {
            let stopStart = Clock.now
            pool.stop(grace: 3)
            poolOverhead = max(1, poolOverhead * 0.5 + (Clock.now - stopStart + startup) * 0.5)
        }
        do {
            try pool.waitUntilReady(
                processes: shape.processes, deadline: min(Clock.now + 60, deadline + 5),
                stopRequested: { TuneSignals.pending != 0 })
        } catch {
            if TuneSignals.pending != 0 { throw Interrupted() }
            throw error
        }
        startup = Clock.now - poolStart
        var results: [Measurement] = []
        for pattern in patterns {
            results.append(try measure(pool: pool, shape: shape, pattern: pattern))
        }
        return results
    }

    private func measure(pool: PoolProcess, shape: Shape, pattern: LoadPattern) throws -> Measurement {
        let load = LoadGenerator(port: pool.httpPort, paths: configuration.paths, pattern: pattern)
        load.start()
        defer { load.stop() }
        try pause(configuration.warmupSeconds, doing: "warming up \(shape)")
        let countersBefore = pool.workers() ?? [:]
        let cpuBefore = countersBefore.keys.compactMap { pid in ProcSample.read(pid: pid).map { (pid, $0) } }
        load.beginWindow()
        try pause(configuration.windowSeconds, doing: "measuring \(shape)")
        let result = load.endWindow()
        let countersAfter = pool.workers() ?? [:]
        let cpuAfter = Dictionary(
            countersAfter.keys.compactMap { pid in ProcSample.read(pid: pid).map { (pid, $0) } },
            uniquingKeysWith: { first, _ in first })
        pool.remember(workers: Array(countersAfter.keys))

        var busyMicros = 0
        var statRequests = 0
        for (pid, after) in countersAfter {
            guard let before = countersBefore[pid] else { continue }
            busyMicros += max(0, after.busyMicros - before.busyMicros)
            statRequests += max(0, after.requests - before.requests)
        }
        var cpuMicros = 0
        var runQueueMicros = 0
        for (pid, before) in cpuBefore {
            guard let after = cpuAfter[pid] else { continue }
            cpuMicros += max(0, after.cpuMicros - before.cpuMicros)
            runQueueMicros += max(0, after.runQueueMicros - before.runQueueMicros)
        }
        // Waiting for a core is the machine's contention (other processes, more workers than cores), not the
        // app's blocking; never below the CPU time itself (run-queue waits also happen between requests).
        let blockedMicros = max(busyMicros - runQueueMicros, min(busyMicros, cpuMicros))
        let rss = cpuAfter.isEmpty ? 0 : cpuAfter.values.map(\.rssBytes).reduce(0, +) / cpuAfter.count
        let percentiles = Percentiles(result.latencies)
        let offered: Double?
        if case .open(let rate, _) = pattern { offered = rate } else { offered = nil }
        let measurement = Measurement(
            shape: shape, requestsPerSecond: result.requestsPerSecond, p50Ms: percentiles.milliseconds(at: 50),
            p99Ms: percentiles.milliseconds(at: 99), requests: result.completed, errors: result.errors,
            rssPerWorker: rss,
            cpuPerRequestMs: statRequests > 0 ? Double(cpuMicros) / 1000 / Double(statRequests) : 0,
            blockingRatio: cpuMicros > 0 ? Double(blockedMicros) / Double(cpuMicros) : 0,
            concurrency: offered == nil ? pattern.connections : nil, offeredRate: offered, seconds: result.seconds)
        if result.completed == 0 {
            let first = configuration.paths[0].path
            if result.errors > 0 {
                throw TuneError(
                    "every request failed on \(shape) (\(result.errors) failures, last: \(result.lastError ?? "?")); "
                        + "check the --url paths (e.g. curl the app at \(first)) and the pool log \(pool.logPath)")
            }
            throw TuneError(
                "no request to \(first) was answered within the \(TerminalTable.format(configuration.windowSeconds, 1)) s "
                    + "window on \(shape); the app is slower than that: give a larger --budget")
        }
        return measurement
    }

    /// Sleeps in short steps so INT/TERM and the progress bar are seen while the load runs.
    private func pause(_ seconds: Double, doing: String) throws {
        let end = Clock.now + seconds
        while Clock.now < end {
            if TuneSignals.pending != 0 { throw Interrupted() }
            progress.bar(elapsed: Clock.now - startedAt, doing: doing)
            usleep(50_000)
        }
    }

    private func summary(_ measurement: Measurement) -> String {
        let load = measurement.offeredRate.map { "open loop \(TerminalTable.format($0, 1)) req/s" } ?? "closed loop"
        return "\(measurement.shape) (\(load)): \(TerminalTable.format(measurement.requestsPerSecond, 1)) req/s, "
            + "p99 \(TerminalTable.format(measurement.p99Ms, 1)) ms, \(measurement.errors) errors, "
            + "blocking ratio \(TerminalTable.format(measurement.blockingRatio, 1))"
    }

    private func noRecommendationReason() -> String {
        if let target = configuration.p99TargetMs,
            let fastest = search.measurements.filter({ $0.p99Ms > target }).min(by: { $0.p99Ms < $1.p99Ms })
        {
            return "no shape met --p99-target \(TerminalTable.format(target, 1)) ms (lowest p99: "
                + "\(TerminalTable.format(fastest.p99Ms, 1)) ms on \(fastest.shape)); no shape is recommended"
        }
        return "every measured shape had errors or was over --max-memory; no shape is recommended"
    }

    private func makeReport(status: TuneReport.Status, message: String?) -> TuneReport {
        TuneReport(
            status: status, message: message, kind: configuration.kind, cores: configuration.cores,
            mode: configuration.sweep ? "sweep" : "search", paths: configuration.paths,
            concurrency: [configuration.concurrency.lowerBound, configuration.concurrency.upperBound],
            budgetSeconds: configuration.budgetSeconds, elapsedSeconds: Clock.now - startedAt,
            maxMemoryBytes: configuration.maxMemory, p99TargetMs: configuration.p99TargetMs,
            appArguments: configuration.appArguments, measurements: search.measurements,
            verification: verification, recommended: status == .failed ? nil : search.recommendation)
    }

    private func writeReports(_ report: TuneReport) {
        do {
            try ReportFiles.write(report, to: configuration.outDirectory)
        } catch {
            progress.line("cannot write the reports to \(configuration.outDirectory): \(error.localizedDescription)")
        }
    }
}
