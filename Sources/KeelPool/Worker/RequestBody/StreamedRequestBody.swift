#if canImport(Glibc)
import Glibc
#endif
import KeelApp
import NIOCore

/// `wsgi.input` on `--http-socket`: the body as the event loop receives it, read by the app thread with
/// blocking calls. The loop appends and the app takes under one mutex; a full queue pauses the socket,
/// and the app's read that makes room again resumes it (`resumeReading`, which hops to the loop).
final class StreamedRequestBody: BodyReader, @unchecked Sendable {
    /// What is queued at most before the connection stops reading: a fast uploader cannot grow memory.
    static let capacity = 256 * 1024

    struct BodyCut: Error, CustomStringConvertible {
        var description: String
    }

    private let lock = ConditionLock()
    private var queue: BodyQueue
    /// CONTENT_LENGTH, or nil for a chunked body (its length is known at its end only).
    private let declaredLength: Int?
    private let resumeReading: @Sendable () -> Void

    init(declaredLength: Int?, capacity: Int = StreamedRequestBody.capacity, resumeReading: @escaping @Sendable () -> Void) {
        self.declaredLength = declaredLength
        self.queue = BodyQueue(capacity: capacity)
        self.resumeReading = resumeReading
    }

    private func locked<T>(_ body: (inout BodyQueue) -> T) -> T {
        lock.withLock { body(&queue) }
    }

    // MARK: event loop side

    /// Queues a part the client sent; `.pauseReading` when the queue is full.
    func append(_ part: ByteBuffer) -> BodyQueue.AppendAction {
        let action = locked { $0.append(part) }
        lock.signal()
        return action
    }

    func end() {
        locked { $0.end() }
        lock.signal()
    }

    /// The body will not be complete; the app's next read raises with `reason`.
    func fail(_ reason: String) {
        locked { $0.fail(reason) }
        lock.signal()
    }

    /// The app has returned: what it left is dropped (the connection drains or closes the rest).
    func abandon() {
        locked { $0.abandon() }
        lock.signal()
    }

    // MARK: app thread side

    /// Bytes of the body not yet read; for a chunked body still arriving, `Int.max` (unknown).
    var remaining: Int {
        locked { queue in
            if let declaredLength { return declaredLength - queue.delivered }
            return queue.phase == .open ? Int.max : queue.buffered
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let result = lock.withLock { () -> BodyQueue.TakeResult in
            while true {
                let result = queue.take(into: buffer)
                guard case .wait = result else { return result }
                // The caller released the GIL: waiting here stalls no other request.
                lock.wait()
            }
        }
        switch result {
        case .bytes(let count, let resume):
            if resume { resumeReading() }
            return count
        case .endOfBody, .wait:  // .wait never leaves the loop above
            return 0
        case .failed(let reason):
            throw BodyCut(description: reason)
        }
    }
}
