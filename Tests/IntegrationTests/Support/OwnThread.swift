import Foundation

/// Runs a long blocking test body on a thread of its own and awaits it, so it does not hold one of swift-testing's
/// cooperative threads (one per core: on 2 cores a blocking minute stalls every other test's time limit).
func onItsOwnThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try body() })
        }.start()
    }
}
