import Foundation

/// A bounded load from the test itself: `threads` clients on threads of their own send requests one
/// after another until `total` have been sent or `seconds` have passed, and every answer is counted.
final class LoadClient: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var succeeded = 0
    private(set) var failures: [String] = []
    private var sent = 0
    private var stopped = false

    /// Runs the load on background threads; `wait()` returns when it is done.
    private let done = DispatchSemaphore(value: 0)
    private let threads: Int
    private let deadline: Date

    init(threads: Int, total: Int, seconds: Double, _ send: @escaping @Sendable () throws -> Int) {
        self.threads = threads
        let deadline = Date().addingTimeInterval(seconds)
        self.deadline = deadline
        for _ in 0..<threads {
            Thread { [self] in
                while true {
                    let go = lock.withLock { () -> Bool in
                        guard !stopped, sent < total, Date() < deadline else { return false }
                        sent += 1
                        return true
                    }
                    guard go else { break }
                    do {
                        let status = try send()
                        lock.withLock {
                            if status == 200 { succeeded += 1 } else { failures.append("status \(status)") }
                        }
                    } catch {
                        lock.withLock { failures.append("\(error)") }
                    }
                }
                done.signal()
            }.start()
        }
    }

    /// Ends the load early (the requests under way still finish and are counted).
    func stop() { lock.withLock { stopped = true } }

    /// Waits for every client thread; one stuck past the deadline by more than a minute is counted as a failure
    /// rather than waited for (a test's time limit cannot end a thread blocked here).
    func wait() {
        for _ in 0..<threads where done.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow) + 60) == .timedOut {
            lock.withLock { failures.append("a load thread was still busy 60 s after the load's deadline") }
        }
    }

    var total: Int { lock.withLock { succeeded + failures.count } }
}
