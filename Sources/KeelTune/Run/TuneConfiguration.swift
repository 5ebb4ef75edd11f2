/// A validated tune run: what to start, what to request, and the limits.
public struct TuneConfiguration: Sendable {
    /// The keel-pool binary the shapes run on (tune's own executable).
    public var poolExecutable: String
    /// The app's flags, passed through to every keel-pool run and into the recommended command.
    public var appArguments: [String]
    public var kind: WorkerKind
    public var paths: [WeightedPath]
    public var concurrency: ClosedRange<Int>
    public var budgetSeconds: Double
    public var maxMemory: Int?
    public var p99TargetMs: Double?
    public var outDirectory: String
    public var sweep: Bool
    /// The open-loop check's arrival rate; nil means 80 % of the recommended shape's measured rate.
    public var checkRate: Double?
    public var cores: Int

    public init(
        poolExecutable: String, appArguments: [String], kind: WorkerKind, paths: [WeightedPath],
        concurrency: ClosedRange<Int>, budgetSeconds: Double, maxMemory: Int?, p99TargetMs: Double?,
        outDirectory: String, sweep: Bool, checkRate: Double?, cores: Int
    ) {
        self.poolExecutable = poolExecutable
        self.appArguments = appArguments
        self.kind = kind
        self.paths = paths
        self.concurrency = concurrency
        self.budgetSeconds = budgetSeconds
        self.maxMemory = maxMemory
        self.p99TargetMs = p99TargetMs
        self.outDirectory = outDirectory
        self.sweep = sweep
        self.checkRate = checkRate
        self.cores = cores
    }

    /// Warm-up before each measured window: 2 % of the budget, from 0.5 s to 5 s.
    public var warmupSeconds: Double { min(5, max(0.5, budgetSeconds * 0.02)) }
    /// Each measured window: 5 % of the budget, from 1.5 s to 15 s.
    public var windowSeconds: Double { min(15, max(1.5, budgetSeconds * 0.05)) }

    /// The flags tune sets on every run itself; given as app flags they would fight the search.
    public static let flagsTuneSets = [
        "--processes", "-p", "--workers", "-w", "--threads", "--worker-connections", "--http-socket", "--socket", "-s",
        "--stats",
    ]

    /// tune's own options that take a value, and its one flag; every other argument after `tune` is the app's.
    public static let optionsWithValue = [
        "--url", "--urls", "--concurrency", "--budget", "--max-memory", "--p99-target", "--rate", "--out",
    ]
    public static let flags = ["--sweep"]

    /// keel-pool's arguments (without argv[0]) → the app's flags: those before `tune` (the root command's) and those
    /// after it that are not tune's own.
    public static func appFlags(commandLine arguments: [String]) -> [String] {
        guard let tune = arguments.firstIndex(of: "tune") else { return appFlags(in: arguments) }
        return Array(arguments[..<tune]) + appFlags(in: Array(arguments[(tune + 1)...]))
    }

    /// The arguments after `tune` without tune's own options: what each keel-pool run gets.
    public static func appFlags(in arguments: [String]) -> [String] {
        var kept: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = String(argument.split(separator: "=", maxSplits: 1).first ?? "")
            if optionsWithValue.contains(name) {
                index += argument.contains("=") ? 1 : 2
            } else if flags.contains(argument) {
                index += 1
            } else {
                kept.append(argument)
                index += 1
            }
        }
        return kept
    }

    /// Splits the pass-through flags into the app's flags and the worker kind, or says which flag to drop.
    public static func appArguments(_ arguments: [String]) throws(TuneError) -> (arguments: [String], kind: WorkerKind)
    {
        var kept: [String] = []
        var kind = WorkerKind.threads
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = String(argument.split(separator: "=", maxSplits: 1).first ?? "")
            if flagsTuneSets.contains(name) {
                throw TuneError(
                    "\(name): keel-pool tune sets \(name) itself on each run; remove it from the app flags")
            }
            if name == "--gevent" {
                // tune chooses N; the flag only says the app is gevent-patched.
                kind = .gevent
                index += argument.contains("=") ? 1 : 2
                continue
            }
            if name == "--asgi" { kind = .asgi }
            kept.append(argument)
            index += 1
        }
        return (kept, kind)
    }
}
