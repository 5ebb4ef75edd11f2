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

    var hasFreeThread: Bool { inFlight.load(ordering: .relaxed) < capacity }
    var running: Int { inFlight.load(ordering: .relaxed) }

    /// The worker said goodbye on one connection: it is leaving, so its other kept connections are not used again
    /// (each would only say goodbye too).
    var isLeaving: Bool { saidGoodbye.load(ordering: .relaxed) }
    func leaving() { saidGoodbye.store(true, ordering: .relaxed) }

    func started() { inFlight.wrappingAdd(1, ordering: .relaxed) }
    func finished() { inFlight.wrappingSubtract(1, ordering: .relaxed) }

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
                if let existing = loads[key]?.load, existing.capacity == Int(responder.capacity) { return existing }
                // Workers come and go (recycling): forget the ones no connection refers to any more.
                if loads.count > 256 { loads = loads.filter { $0.value.load != nil } }
                let load = PoolWorkerLoad(pid: responder.pid, capacity: Int(responder.capacity))
                loads[key] = WeakLoad(load: load)
                return load
            }
        }
    }
}
