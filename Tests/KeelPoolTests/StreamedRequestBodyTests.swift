import NIOCore
import Synchronization
import Testing

@testable import KeelPool

/// The app thread's blocking reads against the loop's appends, with real threads and deadlines.
@Suite struct StreamedRequestBodyTests {
    /// Reads up to 16 bytes on a thread of its own: the count, or the error's text.
    static func read(_ body: StreamedRequestBody) -> BackgroundCall<String> {
        BackgroundCall {
            var bytes = [UInt8](repeating: 0, count: 16)
            do {
                return String(try bytes.withUnsafeMutableBytes { try body.read(into: $0) })
            } catch {
                return "\(error)"
            }
        }
    }

    @Test func aReadWaitsForTheLoopThenReturnsWhatCame() {
        let body = StreamedRequestBody(declaredLength: 3) {}
        let call = Self.read(body)
        #expect(!call.finished(within: 0.05))
        _ = body.append(ByteBuffer(bytes: [1, 2, 3]))
        #expect(call.finished(within: 5))
        #expect(call.result == "3")
        #expect(body.remaining == 0)
    }

    @Test func aWaitingReadThrowsWhenTheClientGoes() {
        let body = StreamedRequestBody(declaredLength: 10) {}
        let call = Self.read(body)
        #expect(!call.finished(within: 0.05))
        body.fail("the client closed the connection")
        #expect(call.finished(within: 5))
        #expect(call.result == "the client closed the connection")
    }

    @Test func theReadThatMakesRoomResumesTheSocket() {
        let resumed = Atomic(0)
        let body = StreamedRequestBody(declaredLength: nil, capacity: 16) { resumed.add(1, ordering: .relaxed) }
        #expect(body.append(ByteBuffer(bytes: Array(repeating: 1, count: 16))) == .pauseReading)
        #expect(body.remaining == Int.max)
        let call = Self.read(body)
        #expect(call.finished(within: 5))
        #expect(resumed.load(ordering: .relaxed) == 1)
    }
}
