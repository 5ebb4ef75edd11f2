#if canImport(Glibc)
    import Glibc
#endif

/// The search over pool shapes as a value state machine: `next()` says which shape to measure, `record(_:)` takes
/// what it gave; the runner does the processes and the load. Tested with made-up measurements, no processes.
///
/// It starts where the app's nature points: `cores` processes at 1 thread (the probe, which measures the blocking
/// ratio), then `cores` processes × the blocking ratio (a worker overlaps about that many requests before its CPU
/// is the limit). From there it climbs: measure the unmeasured neighbours of the best shape (per-process ×2 and ÷2,
/// processes ±1), move to a better one, stop when none beats the best by `improvement`.
public struct ShapeSearch: Sendable {
    public struct Configuration: Sendable, Codable {
        public var cores: Int
        public var kind: WorkerKind
        public var processes: ClosedRange<Int>
        /// Per-process values tried: powers of two up to the client concurrency.
        public var perProcess: [Int]
        public var maxMemory: Int?
        public var p99TargetMs: Double?
        /// A neighbour must beat the best by this fraction to move the search (below it is noise).
        public var improvement: Double
        /// Shapes within this fraction of the best requests/s count as equal; the smallest of them is recommended.
        public var tolerance: Double
        /// Measure every shape of the grid (the benchmark's baseline) instead of searching.
        public var sweep: Bool

        public init(
            cores: Int, kind: WorkerKind = .threads, clientConcurrency: Int, maxMemory: Int? = nil,
            p99TargetMs: Double? = nil,
            improvement: Double = 0.05, tolerance: Double = 0.05, sweep: Bool = false
        ) {
            self.cores = max(1, cores)
            self.kind = kind
            processes = 1...max(2, 2 * self.cores)
            var levels = [1]
            while levels.last! < max(1, clientConcurrency) && levels.last! < 256 { levels.append(levels.last! * 2) }
            perProcess = levels
            self.maxMemory = maxMemory
            self.p99TargetMs = p99TargetMs
            self.improvement = improvement
            self.tolerance = tolerance
            self.sweep = sweep
        }

        public var grid: [Shape] {
            processes.flatMap { p in perProcess.map { Shape(processes: p, perProcess: $0) } }
        }
    }

    private enum Phase: Sendable {
        case probe
        case start
        case climb(center: Shape?)
        case done
    }

    public let configuration: Configuration
    public private(set) var measurements: [Measurement] = []
    /// Shapes left out because their estimated memory is over `--max-memory`.
    public private(set) var overMemory: Set<Shape> = []
    private var phase: Phase
    private var pending: [Shape] = []

    public init(configuration: Configuration) {
        self.configuration = configuration
        if configuration.sweep {
            phase = .done
            pending = configuration.grid
        } else {
            phase = .probe
        }
    }

    /// The probe: one process per core, one request at a time each, so busy time and CPU time are the app's own.
    public var probe: Shape { Shape(processes: clampProcesses(configuration.cores), perProcess: 1) }

    /// The next shape to measure, or nil when the search is over.
    public mutating func next() -> Shape? {
        while true {
            while !pending.isEmpty {
                let shape = pending.removeFirst()
                if isMeasured(shape) { continue }
                if !fitsMemory(shape) {
                    overMemory.insert(shape)
                    continue
                }
                return shape
            }
            switch phase {
            case .done:
                return nil
            case .probe:
                phase = .start
                pending = [probe]
            case .start:
                phase = .climb(center: nil)
                guard let probed = measurements.first(where: { $0.shape == probe }) else { continue }
                pending = [
                    Shape(processes: processesThatFit(probe.processes), perProcess: startingPerProcess(probed.blockingRatio))
                ]
            case .climb(let center):
                guard let best = bestMeasured else {
                    phase = .done
                    continue
                }
                // An eligible best after an ineligible center (over memory or the p99 target) is progress at any rate.
                if let center, let centerMeasurement = measurements.first(where: { $0.shape == center }),
                    isEligible(centerMeasurement) || !isEligible(best),
                    best.requestsPerSecond < centerMeasurement.requestsPerSecond * (1 + configuration.improvement)
                {
                    phase = .done
                    continue
                }
                phase = .climb(center: best.shape)
                pending = neighbours(of: best.shape)
                if pending.allSatisfy({ isMeasured($0) || !fitsMemory($0) }) {
                    overMemory.formUnion(pending.filter { !isMeasured($0) && !fitsMemory($0) })
                    pending = []
                    phase = .done
                }
            }
        }
    }

    public mutating func record(_ measurement: Measurement) {
        measurements.append(measurement)
    }

    /// Whether the search has nothing left to measure (without advancing it).
    public var isDone: Bool {
        if case .done = phase { return pending.allSatisfy { isMeasured($0) || !fitsMemory($0) } }
        return false
    }

    /// The per-process value the probe's blocking ratio points at: the power of two nearest the ratio, at most
    /// what the client concurrency can keep busy across the probe's processes.
    public func startingPerProcess(_ blockingRatio: Double) -> Int {
        if configuration.kind == .threads && blockingRatio < Self.cpuBoundRatio { return 1 }
        let levels = configuration.perProcess
        let useful = max(1, ceilDiv(levels.last!, probe.processes))
        let wanted = min(max(1, blockingRatio), Double(useful))
        return levels.min { abs(log2(Double($0)) - log2(wanted)) < abs(log2(Double($1)) - log2(wanted)) } ?? 1
    }

    /// A blocking ratio under this means a worker cannot overlap two requests: the app is CPU-bound.
    public static let cpuBoundRatio = 2.0

    /// The app is CPU-bound by the probe's blocking ratio. Then the search holds threads at 1 and moves processes
    /// only: under the GIL a second thread adds only the overlap of the worker's socket I/O with Python, which one
    /// more process gives too without GIL contention, and on a shared machine that small gain drowns in noise.
    public var isCPUBound: Bool {
        configuration.kind == .threads && (appBlockingRatio ?? Self.cpuBoundRatio) < Self.cpuBoundRatio
    }

    public func neighbours(of shape: Shape) -> [Shape] {
        let levels = configuration.perProcess
        let index = levels.firstIndex(of: shape.perProcess) ?? 0
        var around: [Shape] = []
        if !isCPUBound {
            if index + 1 < levels.count {
                around.append(Shape(processes: shape.processes, perProcess: levels[index + 1]))
            }
            if index > 0 { around.append(Shape(processes: shape.processes, perProcess: levels[index - 1])) }
        }
        if shape.processes + 1 <= configuration.processes.upperBound {
            around.append(Shape(processes: shape.processes + 1, perProcess: shape.perProcess))
        }
        if shape.processes - 1 >= configuration.processes.lowerBound {
            around.append(Shape(processes: shape.processes - 1, perProcess: shape.perProcess))
        }
        return around
    }

    /// Within `--max-memory`: the shape's own RSS per worker once measured; before, the largest measured with as
    /// many threads or fewer (threads' stacks and buffers grow a worker), else the largest of all (unknown before
    /// the first measurement).
    public func fitsMemory(_ shape: Shape) -> Bool {
        guard let limit = configuration.maxMemory else { return true }
        return estimatedRSS(of: shape) * shape.processes <= limit
    }

    func estimatedRSS(of shape: Shape) -> Int {
        if let own = measurements.first(where: { $0.shape == shape && $0.rssPerWorker > 0 }) { return own.rssPerWorker }
        let fewerThreads = measurements.filter { $0.shape.perProcess <= shape.perProcess }.map(\.rssPerWorker).max()
        return fewerThreads ?? measurements.map(\.rssPerWorker).max() ?? 0
    }

    /// Recommendable: under 1 % errors and within the p99 target.
    public func isEligible(_ measurement: Measurement) -> Bool {
        guard measurement.errorRate <= 0.01, measurement.requests > 0 else { return false }
        if let target = configuration.p99TargetMs, measurement.p99Ms > target { return false }
        return fitsMemory(measurement.shape)
    }

    /// The fastest eligible shape; when none is eligible, the fastest of all (to climb away from it).
    var bestMeasured: Measurement? {
        let eligible = measurements.filter(isEligible)
        return (eligible.isEmpty ? measurements : eligible).max { $0.requestsPerSecond < $1.requestsPerSecond }
    }

    /// The smallest eligible shape within `tolerance` of the fastest: fewer threads and processes cost less memory
    /// and contention for the same throughput. For a CPU-bound app (blocking ratio under 2) fewer threads come
    /// first: under the GIL a thread only overlaps the worker's own I/O, which one more process does without
    /// contention (as in `isCPUBound`). Nil when no shape is eligible.
    public var recommendation: Measurement? {
        let eligible = measurements.filter(isEligible)
        guard let fastest = eligible.max(by: { $0.requestsPerSecond < $1.requestsPerSecond }) else { return nil }
        let floor = fastest.requestsPerSecond * (1 - configuration.tolerance)
        let cpuBound = isCPUBound
        return eligible.filter { $0.requestsPerSecond >= floor }.min { a, b in
            cpuBound
                ? (a.shape.perProcess, a.shape.total) < (b.shape.perProcess, b.shape.total)
                : (a.shape.total, a.shape.processes) < (b.shape.total, b.shape.processes)
        }
    }

    /// The app's blocking ratio, as measured with one request at a time per worker (the probe, or any 1-thread shape).
    public var appBlockingRatio: Double? {
        (measurements.first { $0.shape == probe } ?? measurements.first { $0.shape.perProcess == 1 })?.blockingRatio
    }

    /// `wanted` processes, or fewer when the measured RSS per worker says that many would exceed `--max-memory`.
    private func processesThatFit(_ wanted: Int) -> Int {
        guard let limit = configuration.maxMemory, let perWorker = measurements.first?.rssPerWorker, perWorker > 0
        else { return wanted }
        return max(configuration.processes.lowerBound, min(wanted, limit / perWorker))
    }

    private func isMeasured(_ shape: Shape) -> Bool { measurements.contains { $0.shape == shape } }

    private func clampProcesses(_ count: Int) -> Int {
        min(max(count, configuration.processes.lowerBound), configuration.processes.upperBound)
    }
}

private func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
