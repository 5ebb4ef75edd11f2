import Testing

@testable import KeelPool

/// The worker lifecycle as a pure state machine: events in, states and actions out, no processes.
@Suite struct WorkerSlotTests {
    /// A slot driven into each of its states with the events the master would feed it.
    enum Phase: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case waiting, starting, ready, stopping, retired

        var testDescription: String { rawValue }

        /// pid 42, spawned at t = 100 ms, ready at t = 150 ms.
        func slot() -> WorkerSlot {
            var slot = WorkerSlot(id: 1)
            switch self {
            case .waiting: break
            case .starting: slot.spawned(pid: 42, now: 100)
            case .ready:
                slot.spawned(pid: 42, now: 100)
                slot.becameReady(now: 150)
            case .stopping:
                slot.spawned(pid: 42, now: 100)
                slot.stop()
            case .retired: slot.stop()
            }
            return slot
        }
    }

    /// Spawns a worker at `now`, lets it become ready unless `dieBeforeReady`, and reports its death
    /// `lifetime` ms after the spawn.
    static func runWorker(
        _ slot: inout WorkerSlot, pid: Int32 = 42, at now: Int64, lifetime: Int64, dieBeforeReady: Bool = false
    ) -> WorkerSlot.ExitAction {
        slot.spawned(pid: pid, now: now)
        if !dieBeforeReady { slot.becameReady(now: now + min(lifetime, 10)) }
        return slot.exited(now: now + lifetime)
    }

    @Test func newSlotWaitsAndIsDueAtOnce() {
        let slot = WorkerSlot(id: 3)
        #expect(slot.id == 3)
        #expect(slot.state == .waiting(at: 0))
        #expect(slot.pid == nil)
        #expect(slot.isDue(now: 0))
        #expect(slot.spawns == 0)
        #expect(slot.quickDeaths == 0)
        #expect(slot.statusFD == nil)
        #expect(slot.statusPending == "" && slot.reportedError == nil)
    }

    @Test func spawnedStartsTheWorkerAndCountsIt() {
        var slot = WorkerSlot(id: 1)
        slot.statusPending = "error: left ov"; slot.reportedError = "left over from the last worker"
        slot.spawned(pid: 42, now: 1_000)
        #expect(slot.state == .starting(pid: 42, since: 1_000))
        #expect(slot.pid == 42)
        #expect(slot.spawns == 1)
        #expect(slot.statusPending == "" && slot.reportedError == nil)
        #expect(!slot.isDue(now: 1_000))
    }

    @Test func becameReadyKeepsTheSpawnTime() {
        var slot = WorkerSlot(id: 1)
        slot.spawned(pid: 42, now: 1_000)
        slot.becameReady(now: 1_500)
        #expect(slot.state == .ready(pid: 42, since: 1_000))
        #expect(slot.pid == 42)
    }

    @Test(arguments: [Phase.waiting, .ready, .stopping, .retired])
    func becameReadyOnlyMovesAStartingWorker(phase: Phase) {
        var slot = phase.slot()
        let before = slot.state
        slot.becameReady(now: 500)
        #expect(slot.state == before)
    }

    @Test(
        arguments: [
            (Phase.waiting, nil), (.starting, 42), (.ready, 42), (.stopping, 42), (.retired, nil),
        ] as [(Phase, Int32?)])
    func pidIsKnownWhileAProcessExists(phase: Phase, pid: Int32?) {
        #expect(phase.slot().pid == pid)
    }

    @Test func isDueFromTheWaitingTimeOn() {
        var slot = WorkerSlot(id: 1)
        #expect(slot.spawnFailed(now: 1_000) == 1_100)
        #expect(!slot.isDue(now: 1_099))
        #expect(slot.isDue(now: 1_100))
        #expect(slot.isDue(now: 5_000))
    }

    @Test(arguments: [Phase.starting, .ready, .stopping, .retired])
    func isDueOnlyWhileWaiting(phase: Phase) {
        #expect(!phase.slot().isDue(now: .max))
    }

    // MARK: Exits and respawns

    @Test(arguments: [1_000, 1_001, 60_000, 86_400_000] as [Int64])
    func longLivedWorkerRespawnsAtOnce(lifetime: Int64) {
        var slot = WorkerSlot(id: 1)
        let action = Self.runWorker(&slot, at: 10_000, lifetime: lifetime)
        let now = 10_000 + lifetime
        #expect(action == .respawn(at: now, afterStartupFailure: false))
        #expect(slot.state == .waiting(at: now))
        #expect(slot.isDue(now: now))
        #expect(slot.quickDeaths == 0)
        #expect(slot.pid == nil)
    }

    @Test(arguments: [0, 1, 500, 999] as [Int64])
    func readyWorkerDyingYoungWaits100Milliseconds(lifetime: Int64) {
        var slot = WorkerSlot(id: 1)
        let action = Self.runWorker(&slot, at: 10_000, lifetime: lifetime)
        let now = 10_000 + lifetime
        #expect(action == .respawn(at: now + 100, afterStartupFailure: false))
        #expect(slot.state == .waiting(at: now + 100))
        #expect(!slot.isDue(now: now + 99))
        #expect(slot.quickDeaths == 1)
    }

    /// A worker that never reported ready failed to start, however long it tried.
    @Test(arguments: [0, 999, 1_000, 30_000] as [Int64])
    func deathBeforeReadyIsAStartupFailure(lifetime: Int64) {
        var slot = WorkerSlot(id: 1)
        let action = Self.runWorker(&slot, at: 10_000, lifetime: lifetime, dieBeforeReady: true)
        #expect(action == .respawn(at: 10_000 + lifetime + 100, afterStartupFailure: true))
        #expect(slot.quickDeaths == 1)
    }

    @Test func quickDeathsInARowDoubleTheDelayUpToTheCap() {
        var slot = WorkerSlot(id: 1)
        let expected: [Int64] = [100, 200, 400, 800, 1_600, 3_200, 6_400] + Array(repeating: 10_000, count: 13)
        var now: Int64 = 0
        var delays: [Int64] = []
        for (index, _) in expected.enumerated() {
            let action = Self.runWorker(&slot, pid: Int32(100 + index), at: now, lifetime: 50)
            guard case .respawn(let at, let afterStartupFailure) = action else {
                Issue.record("worker \(index) was not respawned: \(action)")
                return
            }
            #expect(!afterStartupFailure)
            delays.append(at - (now + 50))
            now = at
        }
        #expect(delays == expected)
        #expect(slot.quickDeaths == expected.count)
        #expect(slot.spawns == expected.count)
    }

    @Test func longLifeResetsTheBackoff() {
        var slot = WorkerSlot(id: 1)
        #expect(Self.runWorker(&slot, at: 0, lifetime: 10) == .respawn(at: 110, afterStartupFailure: false))
        #expect(Self.runWorker(&slot, at: 110, lifetime: 10) == .respawn(at: 320, afterStartupFailure: false))
        #expect(Self.runWorker(&slot, at: 320, lifetime: 10) == .respawn(at: 730, afterStartupFailure: false))
        #expect(slot.quickDeaths == 3)

        #expect(Self.runWorker(&slot, at: 730, lifetime: 5_000) == .respawn(at: 5_730, afterStartupFailure: false))
        #expect(slot.quickDeaths == 0)

        #expect(Self.runWorker(&slot, at: 5_730, lifetime: 10) == .respawn(at: 5_840, afterStartupFailure: false))
        #expect(slot.quickDeaths == 1)
    }

    @Test func startupFailuresAndQuickDeathsShareOneBackoff() {
        var slot = WorkerSlot(id: 1)
        #expect(
            Self.runWorker(&slot, at: 0, lifetime: 10, dieBeforeReady: true)
                == .respawn(at: 110, afterStartupFailure: true))
        #expect(Self.runWorker(&slot, at: 110, lifetime: 10) == .respawn(at: 320, afterStartupFailure: false))
        #expect(
            Self.runWorker(&slot, at: 320, lifetime: 10, dieBeforeReady: true)
                == .respawn(at: 730, afterStartupFailure: true))
    }

    // MARK: Failed spawns

    @Test func spawnFailedBacksOffLikeAQuickDeath() {
        var slot = WorkerSlot(id: 1)
        #expect(slot.spawnFailed(now: 1_000) == 1_100)
        #expect(slot.state == .waiting(at: 1_100))
        #expect(slot.spawnFailed(now: 1_100) == 1_300)
        #expect(slot.spawnFailed(now: 1_300) == 1_700)
        #expect(slot.quickDeaths == 3)
        #expect(slot.spawns == 0)
        #expect(slot.pid == nil)
    }

    @Test func spawnFailedContinuesTheBackoffOfQuickDeaths() {
        var slot = WorkerSlot(id: 1)
        #expect(Self.runWorker(&slot, at: 0, lifetime: 10) == .respawn(at: 110, afterStartupFailure: false))
        #expect(slot.spawnFailed(now: 110) == 310)
        #expect(Self.runWorker(&slot, at: 310, lifetime: 10) == .respawn(at: 720, afterStartupFailure: false))
    }

    @Test func spawnFailedBackoffIsCapped() {
        var slot = WorkerSlot(id: 1)
        var now: Int64 = 0
        for _ in 0..<40 { now = slot.spawnFailed(now: now) }
        #expect(slot.spawnFailed(now: now) == now + WorkerSlot.maxBackoffMilliseconds)
    }

    @Test func longLifeAfterFailedSpawnsResetsTheBackoff() {
        var slot = WorkerSlot(id: 1)
        _ = slot.spawnFailed(now: 0)
        _ = slot.spawnFailed(now: 100)
        #expect(Self.runWorker(&slot, at: 300, lifetime: 2_000) == .respawn(at: 2_300, afterStartupFailure: false))
        #expect(slot.spawnFailed(now: 2_300) == 2_400)
    }

    // MARK: Stopping

    @Test(
        arguments: [
            (Phase.waiting, .retired),
            (.starting, .stopping(pid: 42, since: 100)),
            (.ready, .stopping(pid: 42, since: 100)),
            (.stopping, .stopping(pid: 42, since: 100)),
            (.retired, .retired),
        ] as [(Phase, WorkerSlot.State)])
    func stopFromEachState(phase: Phase, expected: WorkerSlot.State) {
        var slot = phase.slot()
        slot.stop()
        #expect(slot.state == expected)
        #expect(!slot.isDue(now: .max))
    }

    /// A stopped worker is not respawned, whether it dies young, late, or before it was ever ready.
    @Test(arguments: Phase.allCases)
    func exitAfterStopRetiresTheSlot(phase: Phase) {
        var slot = phase.slot()
        slot.stop()
        let quickDeaths = slot.quickDeaths
        #expect(slot.exited(now: 120) == .none)
        #expect(slot.state == .retired)
        #expect(slot.pid == nil)
        #expect(!slot.isDue(now: .max))
        #expect(slot.quickDeaths == quickDeaths)
    }

    @Test func stopAfterAStoppedWorkerExitedStaysRetired() {
        var slot = Phase.ready.slot()
        slot.stop()
        _ = slot.exited(now: 5_000)
        slot.stop()
        #expect(slot.state == .retired)
        #expect(slot.exited(now: 6_000) == .none)
    }

    @Test func stopWhileWaitingForABackoffCancelsTheRespawn() {
        var slot = WorkerSlot(id: 1)
        #expect(Self.runWorker(&slot, at: 0, lifetime: 10) == .respawn(at: 110, afterStartupFailure: false))
        slot.stop()
        #expect(slot.state == .retired)
        #expect(!slot.isDue(now: 110))
    }
}

@Suite struct WorkerSlotReplacementTests {
    @Test(arguments: [false, true])
    func exitWithoutReplacementRetiresFromStartingAndReady(wasReady: Bool) {
        var slot = WorkerSlot(id: 1)
        slot.spawned(pid: 10, now: 0)
        if wasReady { slot.becameReady(now: 5) }
        #expect(slot.exited(now: 5_000, replace: false) == .none)
        #expect(slot.state == .retired)
    }

    @Test(arguments: [false, true])
    func exitWithReplacementRespawnsFromStartingAndReady(wasReady: Bool) {
        var slot = WorkerSlot(id: 1)
        slot.spawned(pid: 10, now: 0)
        if wasReady { slot.becameReady(now: 5) }
        guard case .respawn(_, let afterStartupFailure) = slot.exited(now: 5_000, replace: true) else {
            Issue.record("a worker that dies unasked is respawned")
            return
        }
        #expect(afterStartupFailure == !wasReady)
    }
}

@Suite struct WorkerSlotCrashingAppTests {
    @Test func aWorkerThatServedAndThenCrashedIsReplacedAtOnce() {
        var slot = WorkerSlot(id: 1)
        for round in 0..<5 {
            let start = Int64(round) * 500
            slot.spawned(pid: Int32(10 + round), now: start)
            slot.becameReady(now: start + 10)
            // Died within a second, but after answering requests: a crashing app, not a crash loop.
            #expect(slot.exited(now: start + 400, servedRequests: 100) == .respawn(at: start + 400, afterStartupFailure: false))
        }
    }

    @Test func aWorkerThatDiesYoungWithoutServingBacksOff() {
        var slot = WorkerSlot(id: 1)
        slot.spawned(pid: 10, now: 0)
        slot.becameReady(now: 10)
        #expect(slot.exited(now: 400, servedRequests: 0) == .respawn(at: 500, afterStartupFailure: false))
    }
}
