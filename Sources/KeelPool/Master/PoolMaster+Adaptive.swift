import KeelApp

#if canImport(Glibc)
import Glibc
#endif

/// A worker that left or was replaced, for the stats' `recent_recycles` (the status page shows them).
struct WorkerDeparture {
    var id: Int
    var pid: Int32?
    var reason: String
    var at: Int64
}

/// `--cheaper` and `--metrics`: both read the scoreboard on the master's tick.
extension PoolMaster {
    static let recentDeparturesKept = 20

    func recordDeparture(id: Int, pid: Int32?, reason: String, now: Int64 = monotonicMilliseconds()) {
        recentDepartures.append(WorkerDeparture(id: id, pid: pid, reason: reason, at: now))
        if recentDepartures.count > Self.recentDeparturesKept { recentDepartures.removeFirst() }
    }

    /// Busy rows per live worker slot (by slot index), counted once per tick for the cheaper algorithm and the metrics.
    func busyRowsBySlot() -> [Int: Int] {
        var busy: [Int: Int] = [:]
        for index in slots.indices {
            guard let pid = slots[index].pid, let record = slots[index].scoreboardSlot else { continue }
            guard scoreboard.pid(record) == pid else { continue }
            busy[index] = min(scoreboard.busyRows(record), configuration.threads)
        }
        return busy
    }

    func queueLengths() -> [(String, Int?)] { sockets.map { ($0.address.description, $0.acceptQueueLength) } }

    /// One sample for the cheaper algorithm, and what it decides carried out.
    func tickCheaper(now: Int64) {
        guard var machine = cheaper, case .running = phase else { return }
        let busy = busyRowsBySlot()
        var sample = CheaperStateMachine.Sample(
            busyRows: 0, rows: 0, queue: 0, starting: 0, idleWorkers: 0, rowsPerWorker: configuration.threads)
        for index in slots.indices where slots[index].generation == generation {
            switch slots[index].state {
            case .starting, .waiting: sample.starting += 1
            case .ready:
                sample.rows += configuration.threads
                sample.busyRows += busy[index] ?? 0
                if busy[index] == 0 { sample.idleWorkers += 1 }
            default: break
            }
        }
        sample.queue = queueLengths().reduce(0) { $0 + ($1.1 ?? 0) }
        let decision = machine.sample(sample, now: now)
        cheaper = machine
        let algorithm = "cheaper (\(machine.policy.algorithm.rawValue))"
        let range = "\(machine.policy.minimum)-\(machine.policy.maximum)"
        switch decision {
        case .hold:
            return
        case .grow(let to, let reason):
            let added = to - targetProcesses
            guard added > 0 else { return }
            MasterLog.info("\(algorithm): \(reason): spawning \(added) worker\(added == 1 ? "" : "s"), now \(to) of \(range)")
            let highest = slots.filter { $0.generation == generation && $0.isLive }.map(\.id).max() ?? 0
            for id in (highest + 1)...(highest + added) {
                slots.append(WorkerSlot(id: id, generation: generation, spawnAt: now))
            }
            targetProcesses = to
        case .shrink(let to, let reason):
            // The idle worker with the highest id goes, through the same leave path as recycling (it finishes first).
            let idle = slots.indices.filter { slots[$0].generation == generation && slots[$0].isReady && busy[$0] == 0 }
            targetProcesses = to
            guard let index = idle.max(by: { slots[$0].id < slots[$1].id }) else { return }
            stopSlot(index, reason: "\(algorithm): \(reason): retiring this idle worker, now \(to) of \(range)")
        }
    }

    /// The Prometheus exposition, with the gauges and request counters brought up to date first.
    func metricsExposition() -> [UInt8] {
        guard let metrics else { return [] }
        var samples: [PoolMetrics.WorkerSample] = []
        var busyByID: [Int: Int] = [:]
        var rssByID: [Int: Int64] = [:]
        for slot in slots {
            guard let pid = slot.pid, let record = slot.scoreboardSlot else { continue }
            let view = scoreboard.read(record)
            guard view.pid == pid else { continue }
            metrics.observeRequests(workerID: slot.id, pid: pid, total: view.requests)
            busyByID[slot.id, default: 0] += view.threads.reduce(0) { $0 + ($1.startedAt == nil ? 0 : 1) }
            // A worker spawned since the last once-a-second check has no RSS recorded yet: read it now.
            rssByID[slot.id, default: 0] += view.rss > 0 ? view.rss : Int64(residentBytes(of: pid) ?? 0)
        }
        for (id, busy) in busyByID { samples.append(.init(id: id, busy: busy, rssBytes: rssByID[id] ?? 0)) }
        metrics.update(
            workers: samples, isAsync: configuration.isAsync, alive: slots.filter { $0.pid != nil }.count,
            target: targetProcesses, queues: queueLengths())
        return metrics.factory.exposition()
    }

    /// A worker process ended: its last requests are counted before its scoreboard record is let go.
    /// `served`: what the reaper already read from the worker's record (nil if the record is no longer its).
    func countFinalRequests(workerID: Int, pid: Int32, served: Int64?) {
        guard let metrics else { return }
        if let served { metrics.observeRequests(workerID: workerID, pid: pid, total: served) }
        metrics.forget(pid: pid)
    }

    /// The stats' `cheaper` object (null without --cheaper).
    var cheaperStats: String {
        guard let cheaper else { return "null" }
        return "{\"algo\": \"\(cheaper.policy.algorithm.rawValue)\", \"min\": \(cheaper.policy.minimum), "
            + "\"max\": \(cheaper.policy.maximum), \"target\": \(targetProcesses), "
            + "\"busyness\": \(cheaper.lastBusyness.map(String.init) ?? "null")}"
    }

    func departuresStats(now: Int64) -> String {
        let items = recentDepartures.reversed().map { departure -> String in
            let pid = departure.pid.map { String($0) } ?? "null"
            let reason = JSON.quote(departure.reason)
            return "{\"id\": \(departure.id), \"pid\": \(pid), \"reason\": \(reason), \"ago_ms\": \(now - departure.at)}"
        }
        return "[" + items.joined(separator: ", ") + "]"
    }
}
