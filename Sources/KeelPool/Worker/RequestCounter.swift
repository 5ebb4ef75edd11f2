import Synchronization

/// Counts the requests a worker has answered, across its uwsgi threads and its event loop, and fires
/// once when `--max-requests` (plus this worker's jitter) is reached.
final class RequestCounter: Sendable {
    private let served = Atomic<Int>(0)
    private let limit: Int
    private let onLimit: @Sendable () -> Void

    init(limit: Int, onLimit: @escaping @Sendable () -> Void) {
        self.limit = limit
        self.onLimit = onLimit
    }

    func requestServed() {
        let count = served.wrappingAdd(1, ordering: .relaxed).newValue
        if count == limit { onLimit() }
    }
}
