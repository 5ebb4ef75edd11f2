#if canImport(Glibc)
import Glibc
#endif

/// The `--threads T` count shared by the acceptor thread and the event loop: taken when a connection
/// is accepted (or a keep-alive connection starts another request), given back when that request is
/// done. The acceptor calls accept() only while fewer than T are taken. A mutex, not the event loop,
/// owns it, because the acceptor must reserve synchronously before its next accept().
final class SlotGate: @unchecked Sendable {
    private let lock = ConditionLock()
    private let threads: Int
    private var taken = 0
    private var draining = false

    init(threads: Int) {
        self.threads = threads
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.withLock(body)
    }

    /// Blocks until a slot is free; false once draining (stop accepting).
    func waitForFreeSlot() -> Bool {
        locked {
            while taken >= threads && !draining { lock.wait() }
            return !draining
        }
    }

    /// Takes a free slot if there is one (the acceptor reserves it before accept(), so it cannot overshoot).
    func tryTake() -> Bool {
        locked {
            guard taken < threads && !draining else { return false }
            taken += 1
            return true
        }
    }

    /// Takes a slot even when none is free (a keep-alive request already inside this worker queues).
    func take() { locked { taken += 1 } }

    func give() {
        locked {
            taken -= 1
            lock.signal()
        }
    }

    func drain() {
        locked {
            draining = true
            lock.broadcast()
        }
    }

    var isDraining: Bool { locked { draining } }
}
