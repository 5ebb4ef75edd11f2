#if canImport(Glibc)
import Glibc
#endif

/// The pool's lifecycle actions, apart from the master's loop: replacing workers (recycling, reload,
/// TTOU), harakiri, and what repeated startup failures mean.
extension PoolMaster {
    /// Replaces a worker: its successor is spawned now, before the old one (draining) has left.
    func recycle(_ index: Int, reason: String, cause: RespawnReason, signalWorker: Bool, now: Int64) {
        guard case .running = phase, slots[index].isLive, slots[index].pid != nil else { return }
        metrics?.respawned(cause)
        let successor = WorkerSlot(id: slots[index].id, generation: slots[index].generation, spawnAt: now)
        stopSlot(index, reason: "\(reason): recycling", signal: signalWorker)
        slots.append(successor)
    }

    /// Tells one worker to finish its requests and leave while the pool goes on (USR2, see WorkerRuntime);
    /// it is not respawned.
    func stopSlot(_ index: Int, reason: String, signal: Bool = true) {
        let pid = slots[index].pid
        MasterLog.info("worker \(slots[index].id)\(pid.map { " (pid \($0))" } ?? ""): \(reason)")
        if pid != nil { recordDeparture(id: slots[index].id, pid: pid, reason: reason) }
        slots[index].stop()
        if signal, let pid { kill(pid, WorkerSignal.leave) }
    }

    /// --max-worker-lifetime and --reload-on-rss, checked once a second (and RSS recorded in the scoreboard).
    func recycleAgedOrBloatedWorkers(now: Int64) {
        guard case .running = phase else { return }
        for index in slots.indices {
            if let pid = slots[index].pid, let record = slots[index].scoreboardSlot, let bytes = residentBytes(of: pid) {
                scoreboard.setRSS(record, bytes: bytes)
            }
            guard case .ready(let pid, let since) = slots[index].state else { continue }
            if configuration.maxWorkerLifetime > 0 && now - since >= Int64(configuration.maxWorkerLifetime) * 1000 {
                recycle(
                    index, reason: "lived --max-worker-lifetime \(configuration.maxWorkerLifetime)s", cause: .lifetime,
                    signalWorker: true, now: now)
            } else if configuration.reloadOnRSS > 0, let rss = residentMiB(of: pid), rss > configuration.reloadOnRSS {
                recycle(
                    index, reason: "RSS \(rss) MiB over --reload-on-rss \(configuration.reloadOnRSS)", cause: .rss,
                    signalWorker: true, now: now)
            }
        }
    }

    /// HUP: a new generation of workers starts; each one that becomes ready retires an old one.
    func reload(because reason: String = "HUP") {
        guard case .running = phase else { return }
        generation += 1
        MasterLog.info("\(reason): graceful reload, starting generation \(generation) (\(targetProcesses) workers)")
        // Older workers not serving yet are superseded now; serving ones leave as new ones become ready.
        for index in slots.indices where slots[index].generation < generation && slots[index].isLive {
            if !slots[index].isReady { stopSlot(index, reason: "superseded by generation \(generation)") }
        }
        let now = monotonicMilliseconds()
        for id in 1...targetProcesses {
            slots.append(WorkerSlot(id: id, generation: generation, spawnAt: now))
        }
    }

    /// --harakiri: a request running longer than the limit gets its worker told to report and exit
    /// (`WorkerSignal.harakiri`), then SIGKILLed if it is still there after `harakiriGrace`; it is replaced.
    func killStuckRequests(now: Int64) {
        guard configuration.harakiri > 0, case .running = phase else { return }
        let limit = Int64(configuration.harakiri) * 1000
        for index in slots.indices {
            guard let pid = slots[index].pid, let record = slots[index].scoreboardSlot else { continue }
            if let askedAt = slots[index].harakiriAt {
                if now - askedAt >= Self.harakiriGraceMilliseconds {
                    MasterLog.error(
                        "HARAKIRI: worker \(slots[index].id) (pid \(pid)) still there \(Self.harakiriGraceMilliseconds) ms "
                            + "after it was told to exit: SIGKILL")
                    kill(pid, SIGKILL)
                    slots[index].harakiriAt = Int64.max / 2  // once
                }
                continue
            }
            let view = scoreboard.read(record)
            guard view.pid == pid else { continue }
            for thread in view.threads {
                guard let started = thread.startedAt, now - started > limit else { continue }
                let seconds = Double(now - started) / 1000
                MasterLog.error(
                    "HARAKIRI: worker \(slots[index].id) (pid \(pid)) ran \(thread.requestLine.debugDescription) for "
                        + "\(seconds.formatted1)s, over --harakiri \(configuration.harakiri)s: replacing it; "
                        + "its clients get 502 from the proxy")
                slots[index].harakiriAt = now
                slots[index].harakiriCount += 1
                metrics?.harakiriFired()
                kill(pid, WorkerSignal.harakiri)
                break
            }
        }
    }

    /// A worker reported that the app itself cannot load (an import error): with no worker serving,
    /// every respawn would fail the same way, so the pool stops now with exit code 1. A pool that
    /// serves (a reload of broken code) keeps serving and counts it as an ordinary failed start.
    func appCannotLoad(_ message: String) {
        guard case .running = phase, !slots.contains(where: \.isReady) else { return }
        MasterLog.error("the app cannot be loaded, stopping (fix it and start again): \(message)")
        exitCode = 1
        beginStopping(graceful: false)
    }

    /// Five failed starts in a row end the master only if no worker is serving: a pool that serves
    /// keeps serving (and keeps retrying, with backoff) rather than going down with a bad respawn or reload.
    func recordStartupFailure(_ message: String) {
        startupFailuresInARow += 1
        guard startupFailuresInARow >= Self.maxStartupFailures, case .running = phase else { return }
        let serving = slots.filter(\.isReady).count
        guard serving > 0 else {
            MasterLog.error(
                "workers failed to start \(startupFailuresInARow) times in a row; giving up. Last error: \(message)")
            exitCode = 1
            beginStopping(graceful: false)
            return
        }
        startupFailuresInARow = 0
        if slots.contains(where: { $0.generation < generation && $0.isReady }) {
            MasterLog.error(
                "reload failed: new workers failed to start \(Self.maxStartupFailures) times in a row; keeping the "
                    + "\(serving) serving workers. Last error: \(message)")
            for index in slots.indices where slots[index].generation == generation && !slots[index].isReady {
                stopSlot(index, reason: "abandoned with the failed reload")
            }
            // The serving workers, old and new, become the current generation.
            for index in slots.indices where slots[index].isLive { slots[index].generation = generation }
            return
        }
        MasterLog.error(
            "workers keep failing to start (\(Self.maxStartupFailures) in a row); still serving with \(serving) of "
                + "\(targetProcesses), retrying with backoff. Last error: \(message)")
    }

    /// Resident set size of a process in MiB, from /proc (nil if it is gone).
    func residentMiB(of pid: pid_t) -> Int? { residentBytes(of: pid).map { $0 / (1 << 20) } }

    func residentBytes(of pid: pid_t) -> Int? {
        guard let fields = readProcFile("/proc/\(pid)/statm")?.split(separator: " "), fields.count > 1,
            let pages = Int(fields[1])
        else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
