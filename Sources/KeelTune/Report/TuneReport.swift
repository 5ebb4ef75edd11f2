/// Everything one tune run found: what the reports (terminal table, JSON, HTML) are written from.
public struct TuneReport: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        case complete
        /// Written after each measurement, so a killed run still leaves what it measured.
        case running
        /// The budget ended before the search did.
        case budgetEnded = "budget_ended"
        case interrupted
        case failed
    }

    public var status: Status
    public var message: String?
    public var kind: WorkerKind
    public var cores: Int
    public var mode: String
    public var paths: [WeightedPath]
    public var concurrency: [Int]
    public var budgetSeconds: Double
    public var elapsedSeconds: Double
    public var maxMemoryBytes: Int?
    public var p99TargetMs: Double?
    public var appArguments: [String]
    public var measurements: [Measurement]
    /// The recommended shape measured again: across the concurrency range, and open loop at a fixed rate.
    public var verification: [Measurement]
    public var recommended: Measurement?
    public var recommendedCommand: String?

    public init(
        status: Status, message: String? = nil, kind: WorkerKind, cores: Int, mode: String, paths: [WeightedPath],
        concurrency: [Int], budgetSeconds: Double, elapsedSeconds: Double, maxMemoryBytes: Int?, p99TargetMs: Double?,
        appArguments: [String], measurements: [Measurement], verification: [Measurement] = [],
        recommended: Measurement?
    ) {
        self.status = status
        self.message = message
        self.kind = kind
        self.cores = cores
        self.mode = mode
        self.paths = paths
        self.concurrency = concurrency
        self.budgetSeconds = budgetSeconds
        self.elapsedSeconds = elapsedSeconds
        self.maxMemoryBytes = maxMemoryBytes
        self.p99TargetMs = p99TargetMs
        self.appArguments = appArguments
        self.measurements = measurements
        self.verification = verification
        self.recommended = recommended
        self.recommendedCommand = recommended.map {
            Self.command(appArguments: appArguments, shape: $0.shape, kind: kind)
        }
    }

    private enum CodingKeys: String, CodingKey {
        case status, message, kind, cores, mode, paths, concurrency, budgetSeconds, elapsedSeconds, maxMemoryBytes
        case p99TargetMs, appArguments, measurements, verification, recommended, recommendedCommand
    }

    /// Absent values are written as null, so tune.json has the same keys in every run.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        try container.encode(message, forKey: .message)
        try container.encode(kind, forKey: .kind)
        try container.encode(cores, forKey: .cores)
        try container.encode(mode, forKey: .mode)
        try container.encode(paths, forKey: .paths)
        try container.encode(concurrency, forKey: .concurrency)
        try container.encode(budgetSeconds, forKey: .budgetSeconds)
        try container.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try container.encode(maxMemoryBytes, forKey: .maxMemoryBytes)
        try container.encode(p99TargetMs, forKey: .p99TargetMs)
        try container.encode(appArguments, forKey: .appArguments)
        try container.encode(measurements, forKey: .measurements)
        try container.encode(verification, forKey: .verification)
        try container.encode(recommended, forKey: .recommended)
        try container.encode(recommendedCommand, forKey: .recommendedCommand)
    }

    /// The keel-pool command line for a shape, with the app's own flags and the shape spelled out.
    public static func command(appArguments: [String], shape: Shape, kind: WorkerKind) -> String {
        (["keel-pool"] + appArguments + shape.flags(kind: kind)).map(shellQuoted).joined(separator: " ")
    }

    static func shellQuoted(_ word: String) -> String {
        let plain = word.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
                || "-_./:=,@%+".utf8.contains(byte)
        }
        if plain && !word.isEmpty { return word }
        return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
