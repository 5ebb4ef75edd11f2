/// What the second number of a shape means: Python threads per worker (WSGI), or requests interleaved on one event
/// loop per worker (ASGI `--worker-connections`, gevent `--gevent N`).
public enum WorkerKind: String, Sendable, Codable {
    case threads
    case asgi
    case gevent

    /// The keel-pool flag that sets the per-process number.
    public var flag: String {
        switch self {
        case .threads: "--threads"
        case .asgi: "--worker-connections"
        case .gevent: "--gevent"
        }
    }

    /// The word for the per-process number in tables and reports.
    public var unit: String { self == .threads ? "threads" : "connections" }
}

/// One pool shape: processes × threads (or × worker-connections).
public struct Shape: Hashable, Sendable, Codable, CustomStringConvertible {
    public var processes: Int
    public var perProcess: Int

    public init(processes: Int, perProcess: Int) {
        self.processes = processes
        self.perProcess = perProcess
    }

    public var total: Int { processes * perProcess }
    public var description: String { "\(processes)×\(perProcess)" }

    /// The keel-pool flags that make this shape.
    public func flags(kind: WorkerKind) -> [String] {
        ["--processes", String(processes), kind.flag, String(perProcess)]
    }
}

/// What one measured window of one shape gave.
public struct Measurement: Sendable, Codable, Equatable {
    public var shape: Shape
    public var requestsPerSecond: Double
    public var p50Ms: Double
    public var p99Ms: Double
    public var requests: Int
    public var errors: Int
    /// Resident memory of one worker, the mean over the pool's workers, in bytes.
    public var rssPerWorker: Int
    /// Worker CPU time per request (user + system), in milliseconds.
    public var cpuPerRequestMs: Double
    /// The app's busy time ÷ its CPU time: how many requests a worker could overlap before the CPU is the limit.
    public var blockingRatio: Double
    /// Client connections (closed loop), or nil for an open-loop run.
    public var concurrency: Int?
    /// The arrival rate of an open-loop run.
    public var offeredRate: Double?
    public var seconds: Double

    public init(
        shape: Shape, requestsPerSecond: Double, p50Ms: Double, p99Ms: Double, requests: Int, errors: Int,
        rssPerWorker: Int, cpuPerRequestMs: Double, blockingRatio: Double, concurrency: Int? = nil,
        offeredRate: Double? = nil, seconds: Double = 0
    ) {
        self.shape = shape
        self.requestsPerSecond = requestsPerSecond
        self.p50Ms = p50Ms
        self.p99Ms = p99Ms
        self.requests = requests
        self.errors = errors
        self.rssPerWorker = rssPerWorker
        self.cpuPerRequestMs = cpuPerRequestMs
        self.blockingRatio = blockingRatio
        self.concurrency = concurrency
        self.offeredRate = offeredRate
        self.seconds = seconds
    }

    private enum CodingKeys: String, CodingKey {
        case shape, requestsPerSecond, p50Ms, p99Ms, requests, errors, rssPerWorker, cpuPerRequestMs, blockingRatio
        case concurrency, offeredRate, seconds
    }

    /// Absent values are written as null, so every measurement in tune.json has the same keys.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(shape, forKey: .shape)
        try container.encode(requestsPerSecond, forKey: .requestsPerSecond)
        try container.encode(p50Ms, forKey: .p50Ms)
        try container.encode(p99Ms, forKey: .p99Ms)
        try container.encode(requests, forKey: .requests)
        try container.encode(errors, forKey: .errors)
        try container.encode(rssPerWorker, forKey: .rssPerWorker)
        try container.encode(cpuPerRequestMs, forKey: .cpuPerRequestMs)
        try container.encode(blockingRatio, forKey: .blockingRatio)
        try container.encode(concurrency, forKey: .concurrency)
        try container.encode(offeredRate, forKey: .offeredRate)
        try container.encode(seconds, forKey: .seconds)
    }

    /// Errors over all answers and failures; a shape with more than 1 % is never recommended.
    public var errorRate: Double {
        let all = requests + errors
        return all == 0 ? 1 : Double(errors) / Double(all)
    }
}
