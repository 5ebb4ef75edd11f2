#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with one condition variable, for threads that block until another thread changes shared
/// state (Synchronization's `Mutex` cannot wait). Used by `SlotGate` and `StreamedRequestBody`.
final class ConditionLock: @unchecked Sendable {
    // Heap-allocated: a pthread object must not move, and `&property` gives no stable address.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` holding the lock.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Only inside `withLock`: gives the lock up until signalled, then holds it again.
    func wait() {
        pthread_cond_wait(condition, mutex)
    }

    /// Wakes one waiter.
    func signal() {
        pthread_cond_signal(condition)
    }

    /// Wakes every waiter.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }
}
