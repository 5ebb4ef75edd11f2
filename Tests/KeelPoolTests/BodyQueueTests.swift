import NIOCore
import Testing

@testable import KeelPool

/// The streamed body's queue without a channel: when it pauses and resumes the socket, what a read
/// returns at each phase.
@Suite struct BodyQueueTests {
    /// Takes up to `count` bytes; the result and the bytes taken.
    static func take(_ queue: inout BodyQueue, _ count: Int) -> (BodyQueue.TakeResult, [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: count)
        let result = bytes.withUnsafeMutableBytes { queue.take(into: $0) }
        if case .bytes(let taken, _) = result { return (result, Array(bytes[..<taken])) }
        return (result, [])
    }

    @Test func partsComeOutInOrderAcrossReadSizes() {
        var queue = BodyQueue(capacity: 100)
        #expect(queue.append(ByteBuffer(bytes: [1, 2, 3])) == .keepReading)
        #expect(queue.append(ByteBuffer(bytes: [4, 5])) == .keepReading)
        queue.end()
        #expect(Self.take(&queue, 2).1 == [1, 2])
        #expect(Self.take(&queue, 10).1 == [3])
        #expect(Self.take(&queue, 10).1 == [4, 5])
        #expect(Self.take(&queue, 10).0 == .endOfBody)
        #expect(queue.delivered == 5)
    }

    @Test func aFullQueuePausesAndResumesWhenHalfEmpty() {
        var queue = BodyQueue(capacity: 8)
        #expect(queue.append(ByteBuffer(bytes: Array(repeating: 7, count: 6))) == .keepReading)
        #expect(queue.append(ByteBuffer(bytes: Array(repeating: 7, count: 4))) == .pauseReading)
        #expect(Self.take(&queue, 3).0 == .bytes(3, resumeReading: false))  // 7 left: still over half
        #expect(Self.take(&queue, 3).0 == .bytes(3, resumeReading: true))  // 4 left: half
        #expect(Self.take(&queue, 3).0 == .bytes(3, resumeReading: false))  // resumed once only
    }

    @Test(arguments: [
        (failed: false, abandoned: false, expected: BodyQueue.TakeResult.wait),
        (failed: true, abandoned: false, expected: BodyQueue.TakeResult.failed("gone")),
        (failed: false, abandoned: true, expected: BodyQueue.TakeResult.endOfBody),
    ])
    func anEmptyQueueWaitsFailsOrEnds(failed: Bool, abandoned: Bool, expected: BodyQueue.TakeResult) {
        var queue = BodyQueue(capacity: 8)
        _ = queue.append(ByteBuffer(bytes: [1]))
        _ = Self.take(&queue, 1)
        if failed { queue.fail("gone") }
        if abandoned { queue.abandon() }
        #expect(Self.take(&queue, 4).0 == expected)
    }

    @Test func aFailureDropsWhatIsQueuedAndLaterPartsAreIgnored() {
        var queue = BodyQueue(capacity: 8)
        _ = queue.append(ByteBuffer(bytes: [1, 2]))
        queue.fail("client closed")
        #expect(queue.append(ByteBuffer(bytes: [3])) == .keepReading)
        queue.end()
        #expect(queue.buffered == 0)
        #expect(Self.take(&queue, 4).0 == .failed("client closed"))
    }
}
