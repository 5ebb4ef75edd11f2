import Testing

@testable import KeelPool

/// `--cheaper`'s decisions, fed samples by hand: no processes.
@Suite struct CheaperStateMachineTests {
    typealias Sample = CheaperStateMachine.Sample

    static func machine(_ algorithm: CheaperPolicy.Algorithm = .busyness, multiplier: Int = 2, step: Int = 1) -> CheaperStateMachine {
        CheaperStateMachine(
            policy: CheaperPolicy(
                algorithm: algorithm, minimum: 1, initial: 1, step: step, maximum: 4, periodSeconds: 1, multiplier: multiplier),
            now: 0)
    }

    static func sample(busy: Int, rows: Int, queue: Int = 0, starting: Int = 0, idle: Int = 0) -> Sample {
        // 64 rows per worker: the queues below fit in one worker, so growth goes by --cheaper-step.
        Sample(busyRows: busy, rows: rows, queue: queue, starting: starting, idleWorkers: idle, rowsPerWorker: 64)
    }

    /// Feeds the same sample every 100 ms for `seconds`; returns the decisions that were not `.hold`.
    static func feed(_ machine: inout CheaperStateMachine, _ sample: Sample, from start: Int64, seconds: Int) -> [CheaperStateMachine.Decision] {
        stride(from: start + 100, through: start + Int64(seconds) * 1000, by: 100).compactMap { now in
            let decision = machine.sample(sample, now: now)
            return decision == .hold ? nil : decision
        }
    }

    @Test func busynessOverTheMaximumAddsAStepAtThePeriodsEnd() {
        var machine = Self.machine(step: 2)
        let decisions = Self.feed(&machine, Self.sample(busy: 2, rows: 2), from: 0, seconds: 1)
        #expect(decisions == [.grow(to: 3, reason: "busyness 100% over --cheaper-busyness-max 50% in the last 1 s")])
        #expect(machine.target == 3 && machine.lastBusyness == 100)
    }

    @Test func busynessAtTheMaximumHolds() {
        var machine = Self.machine()
        #expect(Self.feed(&machine, Self.sample(busy: 1, rows: 2, idle: 0), from: 0, seconds: 3).isEmpty)
        #expect(machine.target == 1)
    }

    @Test func aLongQueueGrowsAtOnceButNotWhileWorkersAreStarting() {
        var machine = Self.machine()
        #expect(machine.sample(Self.sample(busy: 2, rows: 2, queue: 40), now: 100)
            == .grow(to: 2, reason: "listen queue 40 reached --cheaper-backlog-alert 33"))
        #expect(machine.sample(Self.sample(busy: 2, rows: 2, queue: 40, starting: 1), now: 200) == .hold)
        #expect(machine.sample(Self.sample(busy: 4, rows: 4, queue: 40), now: 300) == .grow(to: 3, reason: "listen queue 40 reached --cheaper-backlog-alert 33"))
    }

    @Test func aQueueGrowsByTheWorkersItNeedsNotJustAStep() {
        var machine = Self.machine()
        var sample = Self.sample(busy: 4, rows: 4, queue: 40)
        sample.rowsPerWorker = 16
        // 40 waiting at 16 per worker: 3 more workers, capped at --processes 4.
        #expect(machine.sample(sample, now: 100) == .grow(to: 4, reason: "listen queue 40 reached --cheaper-backlog-alert 33"))
    }

    @Test func growthStopsAtTheMaximum() {
        var machine = Self.machine(step: 3)
        _ = Self.feed(&machine, Self.sample(busy: 2, rows: 2), from: 0, seconds: 1)
        #expect(machine.target == 4)
        #expect(Self.feed(&machine, Self.sample(busy: 8, rows: 8, queue: 100), from: 1000, seconds: 3).isEmpty)
    }

    @Test func oneIdleWorkerGoesAfterMultiplierCalmPeriodsAndNeverBelowTheMinimum() {
        var machine = Self.machine(multiplier: 2)
        _ = Self.feed(&machine, Self.sample(busy: 2, rows: 2), from: 0, seconds: 1)
        _ = Self.feed(&machine, Self.sample(busy: 4, rows: 4), from: 1000, seconds: 1)
        #expect(machine.target == 3)
        let calm = Self.sample(busy: 0, rows: 6, idle: 3)
        let decisions = Self.feed(&machine, calm, from: 2000, seconds: 6)
        let reason = "busyness 0% under --cheaper-busyness-min 25% for 2 periods of 1 s"
        #expect(decisions == [.shrink(to: 2, reason: reason), .shrink(to: 1, reason: reason)])
        #expect(Self.feed(&machine, calm, from: 8000, seconds: 5).isEmpty)
        #expect(machine.target == 1)
    }

    @Test func noIdleWorkerDefersTheRetirementUntilOneIs() {
        var machine = Self.machine(multiplier: 1)
        _ = Self.feed(&machine, Self.sample(busy: 2, rows: 2), from: 0, seconds: 1)
        #expect(Self.feed(&machine, Self.sample(busy: 0, rows: 4, idle: 0), from: 1000, seconds: 3).isEmpty)
        #expect(Self.feed(&machine, Self.sample(busy: 0, rows: 4, idle: 1), from: 4000, seconds: 1).count == 1)
    }

    @Test func aBusyPeriodResetsTheCalmCount() {
        var machine = Self.machine(multiplier: 3)
        _ = Self.feed(&machine, Self.sample(busy: 2, rows: 2), from: 0, seconds: 1)
        var decisions: [CheaperStateMachine.Decision] = []
        for second in 1...8 {
            // Calm, calm, then 40% (between min and max), repeated: never three calm periods in a row.
            let busy = second % 3 == 0 ? 4 : 0
            decisions += Self.feed(&machine, Self.sample(busy: busy, rows: 10, idle: 1), from: Int64(second) * 1000, seconds: 1)
        }
        #expect(decisions.isEmpty)
    }

    @Test func backlogGrowsOnAnyQueueAndShrinksWhenItStaysEmpty() {
        var machine = Self.machine(.backlog, multiplier: 2)
        // All threads busy but nothing waiting: the backlog algorithm holds.
        #expect(Self.feed(&machine, Self.sample(busy: 2, rows: 2, queue: 0), from: 0, seconds: 2).isEmpty)
        // A waiting connection grows the pool on the tick it is seen, once until the new worker is up.
        #expect(machine.sample(Self.sample(busy: 2, rows: 2, queue: 3), now: 2100)
            == .grow(to: 2, reason: "listen queue 3 reached --cheaper-backlog-alert 1"))
        #expect(Self.feed(&machine, Self.sample(busy: 2, rows: 2, queue: 3, starting: 1), from: 2100, seconds: 1).isEmpty)
        let calm = Self.feed(&machine, Self.sample(busy: 0, rows: 4, queue: 0, idle: 2), from: 3100, seconds: 3)
        #expect(calm == [.shrink(to: 1, reason: "listen queue empty for 2 periods of 1 s")])
    }
}
