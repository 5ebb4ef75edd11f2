import NIOCore

/// The state of a request body passed from the event loop (which appends what the client sent) to the
/// app thread (which takes it as the app reads). Pure: the caller holds the lock and does the I/O the
/// actions ask for. Bounded: past `capacity` buffered bytes the loop is told to stop reading the socket.
struct BodyQueue {
    enum Phase: Equatable {
        case open
        /// The whole body has been appended.
        case ended
        /// The body will not be complete: the client went away, stalled, or sent too much.
        case failed(String)
        /// The app is done with the request: nothing more is kept.
        case abandoned
    }

    enum AppendAction: Equatable {
        case keepReading
        /// The queue is full: stop reading until a `take` returns `resumeReading`.
        case pauseReading
    }

    enum TakeResult: Equatable {
        /// `resumeReading`: the loop paused reading and the queue has room again.
        case bytes(Int, resumeReading: Bool)
        case endOfBody
        case failed(String)
        /// Nothing buffered yet: wait for the loop.
        case wait
    }

    let capacity: Int
    private(set) var phase = Phase.open
    private var parts = CircularBuffer<ByteBuffer>()
    private(set) var buffered = 0
    private(set) var readingPaused = false
    /// Body bytes handed to the app so far.
    private(set) var delivered = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func append(_ part: ByteBuffer) -> AppendAction {
        guard phase == .open, part.readableBytes > 0 else { return .keepReading }
        parts.append(part)
        buffered += part.readableBytes
        guard buffered >= capacity else { return .keepReading }
        readingPaused = true
        return .pauseReading
    }

    mutating func end() {
        if phase == .open { phase = .ended }
    }

    mutating func fail(_ reason: String) {
        guard phase == .open else { return }
        phase = .failed(reason)
        parts.removeAll()
        buffered = 0
    }

    /// The app returned: drop what it left, so a drained or closed connection holds no body memory.
    mutating func abandon() {
        phase = .abandoned
        parts.removeAll()
        buffered = 0
        readingPaused = false
    }

    /// Copies up to `target.count` bytes into `target`.
    mutating func take(into target: UnsafeMutableRawBufferPointer) -> TakeResult {
        if target.count == 0 { return .bytes(0, resumeReading: false) }
        guard var first = parts.first else {
            switch phase {
            case .open: return .wait
            case .ended, .abandoned: return .endOfBody
            case .failed(let reason): return .failed(reason)
            }
        }
        let count = min(target.count, first.readableBytes)
        first.withUnsafeReadableBytes { raw in
            target.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: count)
        }
        first.moveReaderIndex(forwardBy: count)
        if first.readableBytes == 0 {
            parts.removeFirst()
        } else {
            parts[parts.startIndex] = first
        }
        buffered -= count
        delivered += count
        // Half empty before the loop reads again: one hop per half queue, not one per read.
        let resume = readingPaused && buffered <= capacity / 2
        if resume { readingPaused = false }
        return .bytes(count, resumeReading: resume)
    }
}
