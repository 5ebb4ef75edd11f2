/// `--cheaper`: uWSGI's adaptive workers. The pool keeps between `minimum` and `maximum` (`--processes`) workers.
public struct CheaperPolicy: Sendable, Equatable {
    public enum Algorithm: String, Sendable, CaseIterable {
        /// Threads busy over the period (uWSGI's `busyness`).
        case busyness
        /// Connections waiting in the listen queue (uWSGI's `backlog`).
        case backlog
    }

    public var algorithm: Algorithm
    /// `--cheaper`: the fewest workers kept.
    public var minimum: Int
    /// `--cheaper-initial`: workers started with the pool.
    public var initial: Int
    /// `--cheaper-step`: workers added per decision.
    public var step: Int
    /// `--processes`: the most workers.
    public var maximum: Int
    /// `--cheaper-overload`: seconds between decisions.
    public var periodSeconds: Int
    /// `--cheaper-busyness-max` / `-min`: percent of threads busy above which workers are added, below which one goes.
    public var busynessMax: Int
    public var busynessMin: Int
    /// `--cheaper-busyness-multiplier`: calm periods in a row before one worker is retired.
    public var multiplier: Int
    /// `--cheaper-backlog-alert`: a listen queue this long adds workers at once (33 for busyness, 1 for backlog).
    public var backlogAlert: Int

    public init(
        algorithm: Algorithm, minimum: Int, initial: Int, step: Int, maximum: Int, periodSeconds: Int,
        busynessMax: Int = 50, busynessMin: Int = 25, multiplier: Int = 10, backlogAlert: Int? = nil
    ) {
        self.algorithm = algorithm
        self.minimum = minimum
        self.initial = initial
        self.step = step
        self.maximum = maximum
        self.periodSeconds = periodSeconds
        self.busynessMax = busynessMax
        self.busynessMin = busynessMin
        self.multiplier = multiplier
        // uWSGI's busyness alert is 33 waiting connections; the backlog algorithm reacts to any queue by default.
        self.backlogAlert = backlogAlert ?? (algorithm == .busyness ? 33 : 1)
    }
}

/// The decisions of `--cheaper`, apart from the master: it is fed one sample per tick and says when the target moves.
/// A plain value so the policy is tested without processes.
struct CheaperStateMachine {
    /// What the master saw on one tick.
    struct Sample: Equatable {
        /// Rows with a request running, over the serving workers.
        var busyRows: Int
        /// Rows the serving workers have in all (workers × threads or × worker-connections).
        var rows: Int
        /// Connections waiting in the listen queues.
        var queue: Int
        /// Workers spawned and not yet ready: while some start, the pool does not grow again.
        var starting: Int
        /// Ready workers of the current generation with no request running: one of them can be retired.
        var idleWorkers: Int
        /// Requests one worker runs at once (`--threads` or `--worker-connections`): how many a queue needs.
        var rowsPerWorker = 1
    }

    enum Decision: Equatable {
        case hold
        case grow(to: Int, reason: String)
        case shrink(to: Int, reason: String)
    }

    let policy: CheaperPolicy
    private(set) var target: Int
    /// Busyness of the last whole period, in percent (nil before the first period ends).
    private(set) var lastBusyness: Int?
    private var periodStart: Int64
    private var busySum = 0
    private var rowSum = 0
    private var peakQueue = 0
    private var calmPeriods = 0

    init(policy: CheaperPolicy, now: Int64) {
        self.policy = policy
        self.target = policy.initial
        self.periodStart = now
    }

    private var periodMilliseconds: Int64 { Int64(policy.periodSeconds) * 1000 }

    mutating func sample(_ sample: Sample, now: Int64) -> Decision {
        busySum += sample.busyRows
        rowSum += sample.rows
        peakQueue = max(peakQueue, sample.queue)
        // A queue past the alert adds workers now rather than at the period's end (both algorithms).
        if sample.queue >= policy.backlogAlert, sample.starting == 0, target < policy.maximum {
            calmPeriods = 0
            return grow(
                "listen queue \(sample.queue) reached --cheaper-backlog-alert \(policy.backlogAlert)",
                absorbing: sample.queue, perWorker: sample.rowsPerWorker)
        }
        guard now - periodStart >= periodMilliseconds else { return .hold }
        let busyness = rowSum > 0 ? (busySum * 100 + rowSum / 2) / rowSum : 0
        let queue = peakQueue
        lastBusyness = busyness
        periodStart = now
        busySum = 0
        rowSum = 0
        peakQueue = 0
        let period = "\(policy.periodSeconds) s"
        switch policy.algorithm {
        case .busyness:
            if busyness > policy.busynessMax {
                calmPeriods = 0
                guard target < policy.maximum, sample.starting == 0 else { return .hold }
                return grow("busyness \(busyness)% over --cheaper-busyness-max \(policy.busynessMax)% in the last \(period)")
            }
            guard busyness < policy.busynessMin, queue == 0 else {
                calmPeriods = 0
                return .hold
            }
            return calm(
                sample, reason: "busyness \(busyness)% under --cheaper-busyness-min \(policy.busynessMin)% for "
                    + "\(policy.multiplier) periods of \(period)")
        case .backlog:
            // Growth happened on the tick the queue reached the alert; the period only judges calm.
            guard queue == 0 else {
                calmPeriods = 0
                return .hold
            }
            return calm(sample, reason: "listen queue empty for \(policy.multiplier) periods of \(period)")
        }
    }

    /// Adds `--cheaper-step` workers, or as many as a waiting queue needs to be served at once.
    private mutating func grow(_ reason: String, absorbing queue: Int = 0, perWorker: Int = 1) -> Decision {
        let forQueue = (queue + max(1, perWorker) - 1) / max(1, perWorker)
        target = min(policy.maximum, target + max(policy.step, forQueue))
        return .grow(to: target, reason: reason)
    }

    /// A calm period: after `multiplier` in a row one idle worker goes; with none idle, the next calm period retries.
    private mutating func calm(_ sample: Sample, reason: String) -> Decision {
        guard target > policy.minimum else {
            calmPeriods = 0
            return .hold
        }
        calmPeriods += 1
        guard calmPeriods >= policy.multiplier, sample.idleWorkers > 0 else { return .hold }
        calmPeriods = 0
        target -= 1
        return .shrink(to: target, reason: reason)
    }

    /// The pool's size was set from outside (a failed reload's survivors): keep the target within the policy.
    mutating func clamp() { target = min(policy.maximum, max(policy.minimum, target)) }
}
