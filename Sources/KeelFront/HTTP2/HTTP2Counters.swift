import Synchronization

/// The process's HTTP/2 figures, metrics on or off (the status page shows them too): connections open now, streams
/// opened, and connections cut off for misbehaving, by reason. Relaxed atomics: one add per connection or stream.
final class HTTP2Counters: Sendable {
    let connectionsOpen = Atomic<Int>(0)
    let streamsOpened = Atomic<Int>(0)
    /// Rare (one per attack), so a lock.
    private let cutOffCounts = Mutex<[Int]>(HTTP2CutOff.allCases.map { _ in 0 })

    func countCutOff(_ reason: HTTP2CutOff) {
        cutOffCounts.withLock { $0[reason.index] += 1 }
    }

    func cutOffs(_ reason: HTTP2CutOff) -> Int {
        cutOffCounts.withLock { $0[reason.index] }
    }
}

/// Why keel closed an HTTP/2 connection with an error GOAWAY: the attack shapes by name (metric labels).
enum HTTP2CutOff: String, CaseIterable, Sendable {
    case rapidReset = "rapid_reset"
    case continuationFlood = "continuation_flood"
    case headerBlockTooLarge = "header_block_too_large"
    case controlFrameFlood = "control_frame_flood"
    case unreadReplies = "unread_replies"
    case emptyFrameFlood = "empty_frame_flood"
    case streamErrors = "stream_errors"
    case compressionError = "compression_error"
    case protocolError = "protocol_error"

    var index: Int { Self.allCases.firstIndex(of: self)! }
}
