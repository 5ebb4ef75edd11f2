import NIOCore
import NIOHTTP1

/// Which request parts the proxy may see now: one request at a time, pipelined ones held until the response before
/// them has ended, as NIO's `HTTPServerPipelineHandler` does, without its cost on the usual path: that handler
/// withholds `read()` while any response is pending, so a keep-alive client waiting for an upstream's answer cost two
/// `epoll_ctl` calls per request (about 16 µs of keel's CPU per proxied request). Here reads are held back only while
/// pipelined requests queue up beyond a bound. Also the graceful stop: an idle connection closes at once, a busy one
/// right after its response. A plain state machine that keel's ProxyHandler and keel-pool's HTTP connections drive;
/// a handler of its own cost 1.6 µs a request.
public struct PipelinedRequests {
    public init() {}

    /// Pipelined requests queued before reads pause (a client may send this many ahead without waiting).
    public static let maxQueuedRequests = 4

    /// The current request's head was passed on and its end not yet.
    private var receiving = false
    /// A request was passed on and its response has not ended.
    private var responding = false
    /// Room for one part at first: most connections never pipeline, and the default 16 slots cost every idle
    /// connection about 1 KiB (bench/idle.sh); it grows when a client does pipeline.
    private var queued = CircularBuffer<HTTPServerRequestPart>(initialCapacity: 1)
    private var queuedHeads = 0
    /// A `read()` was withheld because the queue was full: it is owed once the queue drains.
    private var readHeld = false
    /// A graceful stop asked the connection to close after its response in flight.
    public private(set) var quiescing = false

    /// A part from the decoder: true when the proxy takes it now, false when it was queued behind a response.
    public mutating func arrived(_ part: HTTPServerRequestPart) -> Bool {
        guard queued.isEmpty, passesNow(part) else {
            if case .head = part { queuedHeads += 1 }
            queued.append(part)
            return false
        }
        passed(part)
        return true
    }

    /// Whether a `read()` from the channel may go on to the socket (false: it is owed until the queue drains).
    public mutating func allowsRead() -> Bool {
        guard queuedHeads >= Self.maxQueuedRequests else { return true }
        readHeld = true
        return false
    }

    /// The response to the current request has ended.
    public mutating func responseEnded() {
        responding = false
        if quiescing {
            // This response is the connection's last: what is queued is dropped, not answered half.
            queued.removeAll()
            queuedHeads = 0
        }
    }

    /// The next queued part the proxy may take now, if any; call until nil after a response ends.
    public mutating func nextDeliverable() -> HTTPServerRequestPart? {
        guard !quiescing, let part = queued.first, passesNow(part) else { return nil }
        queued.removeFirst()
        if case .head = part { queuedHeads -= 1 }
        passed(part)
        return part
    }

    /// After the queue drained: true once when a withheld `read()` is now owed to the socket.
    public mutating func owesRead() -> Bool {
        guard readHeld, queuedHeads < Self.maxQueuedRequests else { return false }
        readHeld = false
        return true
    }

    public enum QuiesceAction: Equatable {
        case closeNow
        case closeAfterResponse
    }

    /// A graceful stop: an idle connection closes at once; a busy one after its current response.
    public mutating func quiesce() -> QuiesceAction {
        if !responding && !receiving && queued.isEmpty { return .closeNow }
        quiescing = true
        return .closeAfterResponse
    }

    private func passesNow(_ part: HTTPServerRequestPart) -> Bool {
        switch part {
        case .head: !responding
        case .body, .end: receiving
        }
    }

    private mutating func passed(_ part: HTTPServerRequestPart) {
        switch part {
        case .head:
            responding = true
            receiving = true
        case .body:
            break
        case .end:
            receiving = false
        }
    }
}
