import NIOCore

/// nginx's client timeouts for one connection as a plain state machine: `client_header_timeout` (a head must arrive
/// whole in time → 408, the slowloris defence), `client_body_timeout` (between body reads → 408), `keepalive_timeout`
/// (an idle connection is closed silently) and `send_timeout` (a client that stops reading the last response gets
/// that long more). Fed what the decoder saw and when a response ended; ProxyHandler carries out the actions on its
/// one `LoopTimer`. State, not a handler: a pass-through handler cost every request about 2.5 µs (issue 14).
struct ClientTimeouts {
    enum Phase: Equatable {
        /// Between requests; `sawBytes` once part of a next head arrived.
        case waitingForHead(sawBytes: Bool)
        case readingBody
        /// Request read, response not finished: the upstream's own timeouts apply.
        case awaitingResponse
    }

    /// What the owner does with its timer.
    enum TimerAction: Equatable {
        case arm(TimeAmount)
        case cancel
        case none
    }

    /// What the owner does when the timer fires.
    enum Expiry: Equatable {
        /// Idle past keepalive_timeout (or the last response never left): close without a word.
        case closeSilently
        /// The head did not arrive whole in client_header_timeout: answer 408 and close.
        case headTimedOut
        /// The current request's body stalled past client_body_timeout: its owner answers 408.
        case bodyTimedOut
        case rearm(TimeAmount)
        case none
    }

    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    let keepaliveTimeout: TimeAmount
    let sendTimeout: TimeAmount

    private var phase = Phase.waitingForHead(sawBytes: false)
    private var requestsStarted = 0
    private var responsesFinished = 0
    /// A response was finished during the current read: the bytes of that read belonged to the answered request.
    private var answeredDuringRead = false
    /// The keep-alive timeout found the last response still leaving once already.
    private var responseStillLeaving = false
    /// An HTTP/2 stream: the request lasts until END_STREAM whatever its method and headers say.
    private let isStream: Bool
    /// A stream's head arrived without its end: client_body_timeout starts at the read's end unless the end came.
    private var armAtReadEnd = false

    init(limits: FrontConfiguration.Limits, isStream: Bool = false) {
        headerTimeout = limits.clientHeaderTimeout
        bodyTimeout = limits.clientBodyTimeout
        keepaliveTimeout = limits.keepaliveTimeout
        sendTimeout = limits.sendTimeout
        self.isStream = isStream
    }

    /// The connection is open: its first head has client_header_timeout to arrive.
    func connected() -> TimerAction { .arm(headerTimeout) }

    /// A head arrived (pipelined ones included, before they are queued).
    /// A stream's head always opens a body phase (a GET whose HEADERS lack END_STREAM must time out too), but its
    /// timer waits for the read's end: a HEADERS frame with END_STREAM ends it in the same read, at no timer's cost.
    mutating func receivedHead(hasBody: Bool) -> TimerAction {
        requestsStarted += 1
        if isStream {
            phase = .readingBody
            armAtReadEnd = true
            return .none
        }
        phase = hasBody ? .readingBody : .awaitingResponse
        return hasBody ? .arm(bodyTimeout) : .cancel
    }

    mutating func receivedBody() -> TimerAction {
        guard phase == .readingBody else { return .none }
        armAtReadEnd = false
        return .arm(bodyTimeout)
    }

    mutating func receivedEnd() -> TimerAction {
        armAtReadEnd = false
        guard phase == .readingBody else { return .none }
        phase = .awaitingResponse
        return .cancel
    }

    /// The end of one read from the socket: bytes that did not complete a head start its client_header_timeout.
    mutating func readComplete() -> TimerAction {
        if armAtReadEnd {
            armAtReadEnd = false
            return .arm(bodyTimeout)
        }
        defer { answeredDuringRead = false }
        guard phase == .waitingForHead(sawBytes: false), !answeredDuringRead else { return .none }
        phase = .waitingForHead(sawBytes: true)
        return .arm(headerTimeout)
    }

    /// A response's end was written. When it answered the last request started, keepalive_timeout counts from here;
    /// a response still leaving when it passes gets send_timeout more (see `expired`): no promise per response.
    mutating func responseEnded() -> TimerAction {
        responsesFinished += 1
        guard responsesFinished >= requestsStarted else { return .none }
        phase = .waitingForHead(sawBytes: false)
        answeredDuringRead = true
        responseStillLeaving = false
        return .arm(keepaliveTimeout)
    }

    /// The timer passed its deadline; `unsentBytes` is what the channel still holds of the last response.
    mutating func expired(unsentBytes: Int) -> Expiry {
        switch phase {
        case .waitingForHead(sawBytes: false):
            if unsentBytes > 0 && !responseStillLeaving {
                responseStillLeaving = true
                return .rearm(sendTimeout)
            }
            return .closeSilently
        case .waitingForHead(sawBytes: true):
            return .headTimedOut
        case .readingBody where requestsStarted - responsesFinished > 1:
            // A pipelined request's body, held back while an earlier one is answered: judge it once it is current.
            return .rearm(bodyTimeout)
        case .readingBody:
            return .bodyTimedOut
        case .awaitingResponse:
            return .none
        }
    }
}
