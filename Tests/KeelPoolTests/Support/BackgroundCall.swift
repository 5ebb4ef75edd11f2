import Dispatch

/// Runs a blocking call on a thread of its own (a private queue is given its own thread), so a test
/// can check with a deadline whether it has returned: a broken primitive fails the test, never hangs it.
final class BackgroundCall<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let queue = DispatchQueue(label: "KeelPoolTests.BackgroundCall")
    /// Written on the call's thread before `done` is signalled; read only once `finished` saw the signal.
    private var value: Value?
    private var hasFinished = false

    init(_ body: @escaping @Sendable () -> Value) {
        queue.async {
            self.value = body()
            self.done.signal()
        }
    }

    /// Whether the call returned within `seconds` (0 just looks). Called from the test's thread only.
    func finished(within seconds: Double) -> Bool {
        if !hasFinished { hasFinished = done.wait(timeout: .now() + seconds) == .success }
        return hasFinished
    }

    /// What the call returned, once `finished` has seen it return.
    var result: Value? { hasFinished ? value : nil }
}
