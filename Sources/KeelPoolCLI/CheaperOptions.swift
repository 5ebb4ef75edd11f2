import ArgumentParser
import KeelPool

/// uWSGI's adaptive-worker flags: `--cheaper N` keeps at least N workers and `--processes` becomes the most.
public struct CheaperOptions: ParsableArguments {
    public init() {}

    @Option(
        name: .customLong("cheaper"),
        help: ArgumentHelp(
            "Adaptive workers: keep at least N, add up to --processes as load grows, retire idle ones (0 = off).",
            valueName: "N"))
    var minimum: Int = 0

    @Option(
        name: .customLong("cheaper-initial"),
        help: ArgumentHelp("With --cheaper: workers started with the pool (default --cheaper).", valueName: "N"))
    var initial: Int?

    @Option(name: .customLong("cheaper-step"), help: ArgumentHelp("With --cheaper: workers added at once (default 1).", valueName: "N"))
    var step: Int = 1

    @Option(
        name: .customLong("cheaper-algo"),
        help: ArgumentHelp("With --cheaper: busyness (threads busy over a period) or backlog (listen queue).", valueName: "ALGO"))
    var algorithm: String = "busyness"

    @Option(
        name: .customLong("cheaper-overload"),
        help: ArgumentHelp("With --cheaper: seconds between decisions (default 3).", valueName: "SECONDS"))
    var period: Int = 3

    @Option(
        name: .customLong("cheaper-busyness-max"),
        help: ArgumentHelp("busyness: add workers above this percent of threads busy (default 50).", valueName: "PERCENT"))
    var busynessMax: Int = 50

    @Option(
        name: .customLong("cheaper-busyness-min"),
        help: ArgumentHelp("busyness: retire a worker below this percent of threads busy (default 25).", valueName: "PERCENT"))
    var busynessMin: Int = 25

    @Option(
        name: .customLong("cheaper-busyness-multiplier"),
        help: ArgumentHelp("Calm periods in a row before one idle worker is retired (default 10).", valueName: "N"))
    var multiplier: Int = 10

    @Option(
        name: [.customLong("cheaper-backlog-alert"), .customLong("cheaper-busyness-backlog-alert")],
        help: ArgumentHelp(
            "Listen-queue length that adds workers (busyness: at once, default 33; backlog: at the period, default 1).",
            valueName: "N"))
    var backlogAlert: Int?

    /// The policy, or nil without --cheaper; every bad value is refused in one line naming its flag.
    func policy(processes: Int) throws -> CheaperPolicy? {
        guard minimum != 0 else {
            for (flag, given) in [
                ("--cheaper-initial", initial != nil), ("--cheaper-step", step != 1), ("--cheaper-algo", algorithm != "busyness"),
                ("--cheaper-overload", period != 3), ("--cheaper-backlog-alert", backlogAlert != nil),
            ] where given {
                throw ValidationError("\(flag) needs --cheaper N (the fewest workers); without it the pool keeps --processes")
            }
            return nil
        }
        guard minimum >= 1 else { throw ValidationError("--cheaper \(minimum): give the fewest workers to keep, at least 1") }
        guard minimum < processes else {
            throw ValidationError(
                "--cheaper \(minimum) must be below --processes \(processes) (the most workers); raise --processes")
        }
        guard let algo = CheaperPolicy.Algorithm(rawValue: algorithm) else {
            throw ValidationError("--cheaper-algo \(algorithm): give busyness or backlog")
        }
        let initial = initial ?? minimum
        guard (minimum...processes).contains(initial) else {
            throw ValidationError("--cheaper-initial \(initial): give a number from --cheaper \(minimum) to --processes \(processes)")
        }
        guard (1...processes).contains(step) else {
            throw ValidationError("--cheaper-step \(step): give the workers to add at once, from 1 to --processes \(processes)")
        }
        guard (1...3600).contains(period) else {
            throw ValidationError("--cheaper-overload \(period): give the seconds between decisions, from 1 to 3600")
        }
        guard (0...100).contains(busynessMin), (1...100).contains(busynessMax), busynessMin < busynessMax else {
            throw ValidationError(
                "--cheaper-busyness-min \(busynessMin) / --cheaper-busyness-max \(busynessMax): give percents with min below max")
        }
        guard (1...1000).contains(multiplier) else {
            throw ValidationError("--cheaper-busyness-multiplier \(multiplier): give a number of periods from 1 to 1000")
        }
        if let backlogAlert, backlogAlert < 1 {
            throw ValidationError("--cheaper-backlog-alert \(backlogAlert): give a queue length of at least 1")
        }
        return CheaperPolicy(
            algorithm: algo, minimum: minimum, initial: initial, step: step, maximum: processes, periodSeconds: period,
            busynessMax: busynessMax, busynessMin: busynessMin, multiplier: multiplier, backlogAlert: backlogAlert)
    }
}
