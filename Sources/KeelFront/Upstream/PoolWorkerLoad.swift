import NIOCore
import Synchronization
import UWSGI

/// How many of keel's requests one keel-pool worker is running, counted across every event loop, so a kept
/// connection to a worker whose threads are all busy is passed over: a new connection then goes to whichever worker
/// is accepting, the same contract the pool keeps for connections made per request.
final class PoolWorkerLoad: Sendable {
    let pid: UInt32
    /// The worker's --threads.
    let capacity: Int
    private let inFlight = Atomic<Int>(0)
    private let saidGoodbye = Atomic<Bool>(false)

    init(pid: UInt32, capacity: Int) {
        self.pid = pid
        self.capacity = capacity
    }

    var hasFreeThread: Bool { inFlight.load(ordering: .sequentiallyConsistent) < capacity }
    var running: Int { inFlight.load(ordering: .relaxed) }

    /// The worker said goodbye on one connection, or one closed under a request without a goodbye (the worker
    /// died): its other kept connections are not used again (each would only say goodbye, or fail the request).
    var isLeaving: Bool { saidGoodbye.load(ordering: .relaxed) }
    func leaving() { saidGoodbye.store(true, ordering: .relaxed) }

    func started() { inFlight.wrappingAdd(1, ordering: .relaxed) }
    func finished() { inFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent) }

    /// Event loops whose requests to one server wait for a free thread with nothing of their own in flight: a request
    /// ending on any loop wakes them (the loop that frees a thread may not be the one waiting for it).
    final class WaitingLoops: Sendable {
        private let count = Atomic<Int>(0)
        /// Requests on new connections whose worker is not known yet (no frame back): that worker is busy but
        /// counted nowhere, so while any exists no kept connection is used (it might be to that very worker, and a
        /// request queued behind another in a worker's socket dies with it). New connections stay safe: the
        /// listen queue hands them only to a free thread.
        private let unidentified = Atomic<Int>(0)

        var hasUnidentified: Bool { unidentified.load(ordering: .sequentiallyConsistent) > 0 }
        func unidentifiedStarted() { unidentified.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        func unidentifiedEnded() { unidentified.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        private let loops = Mutex<[ObjectIdentifier: (loop: any EventLoop, wake: @Sendable () -> Void)]>([:])

        /// Registers `loop`; the caller re-checks for a free thread afterwards (a thread freed in between is then
        /// seen by one side or the other: both use sequentially consistent atomics).
        func add(_ loop: any EventLoop, wake: @escaping @Sendable () -> Void) {
            loops.withLock { loops in
                if loops.updateValue((loop, wake), forKey: ObjectIdentifier(loop)) == nil {
                    count.wrappingAdd(1, ordering: .sequentiallyConsistent)
                }
            }
        }

        func remove(_ loop: any EventLoop) {
            loops.withLock { loops in
                if loops.removeValue(forKey: ObjectIdentifier(loop)) != nil {
                    count.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                }
            }
        }

        /// Whether a loop other than one that is itself registered (`registered`) waits.
        func othersWait(registered: Bool) -> Bool {
            count.load(ordering: .sequentiallyConsistent) > (registered ? 1 : 0)
        }

        /// A thread was freed: every waiting loop looks again. One atomic load when none waits.
        func wakeAll() {
            guard count.load(ordering: .sequentiallyConsistent) > 0 else { return }
            let waiting = loops.withLock { loops in
                let all = Array(loops.values)
                count.wrappingSubtract(loops.count, ordering: .sequentiallyConsistent)
                loops.removeAll()
                return all
            }
            for entry in waiting { entry.loop.execute(entry.wake) }
        }
    }

    static let waiting = Mutex<[String: WaitingLoops]>([:])

    /// The waiting loops of one server (by its address), shared by every loop; looked up once per loop and server.
    static func waitingLoops(server: String) -> WaitingLoops {
        waiting.withLock { all in
            if let existing = all[server] { return existing }
            let created = WaitingLoops()
            all[server] = created
            return created
        }
    }

    /// One object per (server, worker pid) for the whole process; looked up once per new connection, never per request.
    static let registry = Registry()

    final class Registry: Sendable {
        private struct Key: Hashable {
            var server: String
            var pid: UInt32
        }

        private struct WeakLoad {
            weak var load: PoolWorkerLoad?
        }

        private let loads = Mutex<[Key: WeakLoad]>([:])

        func load(server: String, responder: KeelWire.Responder) -> PoolWorkerLoad {
            loads.withLock { loads in
                let key = Key(server: server, pid: responder.pid)
                if let existing = loads[key]?.load, existing.capacity == Int(responder.capacity), !existing.isLeaving {
                    return existing
                }
                // Workers come and go (recycling): forget the ones no connection refers to any more.
                if loads.count > 256 { loads = loads.filter { $0.value.load != nil } }
                let load = PoolWorkerLoad(pid: responder.pid, capacity: Int(responder.capacity))
                loads[key] = WeakLoad(load: load)
                return load
            }
        }
    }
}
