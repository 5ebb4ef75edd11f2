import NIOCore
import Synchronization

/// An app that runs many requests at once on one event loop of its own (an ASGI app on asyncio, a WSGI app on
/// gevent's hub): the worker's I/O thread hands it requests and never waits for it; it answers through each
/// request's `AsyncExchange` from its own thread. `--worker-connections` bounds the requests in flight.
public protocol AsyncApp: Sendable {
    /// Starts the app's loop and runs its start-up (ASGI lifespan) there; a failure is a load error.
    func startServing() throws(AppLoadError)
    /// A new request, from the connection's event loop: must not block.
    func start(_ exchange: AsyncExchange)
    /// After the last request: the app's shutdown (ASGI lifespan), then its loop stops. Waits at most `seconds`.
    func stopServing(withinSeconds seconds: Int)
    /// As `Handler.reportStuckThreads`: where the app's loop is, for --harakiri. Takes no lock.
    func reportStuckThreads()
}

/// What a worker loads: an app called on its threads, or one with a loop of its own.
public enum LoadedApp: Sendable {
    case sync(any Handler)
    case async(any AsyncApp)
}

/// The connection side of an exchange: called from the app's thread, it carries the work to the connection's loop.
public protocol AsyncConnection: AnyObject, Sendable {
    /// Writes the head (first call only) and `body`; `more == false` ends the response. `exchange.written(_:)` is
    /// called as the bytes leave.
    func send(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, for exchange: AsyncExchange)
    /// The app ended without finishing its response: a 500 if nothing was sent, else the connection is cut.
    /// For an accepted WebSocket: the app has ended (`failed`: by an exception), so the socket closes.
    func fail(for exchange: AsyncExchange)
    /// The app accepted a WebSocket: the 101 goes out and the connection speaks frames from now on.
    func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], for exchange: AsyncExchange)
    /// A message, or the app's close, for an accepted WebSocket.
    func sendWebSocket(_ message: WebSocketOutbound, for exchange: AsyncExchange)
    /// The app has returned from an accepted WebSocket (`failed`: by an exception): a close goes out if none has.
    func endWebSocket(failed: Bool, for exchange: AsyncExchange)
    /// The app took queued body bytes: the connection may read again.
    func resumeReading()
}

/// What an app sends on an accepted WebSocket.
public enum WebSocketOutbound: Sendable {
    case text(ByteBuffer)
    case binary(ByteBuffer)
    case close(code: Int, reason: String)

    public var byteCount: Int {
        switch self {
        case .text(let bytes), .binary(let bytes): return bytes.readableBytes
        case .close: return 0
        }
    }
}

/// What arrives from the client of an accepted WebSocket, whole messages (fragments joined).
public enum WebSocketInbound: Sendable {
    case text(String)
    case binary(ByteBuffer)
    /// The connection ended: the client's close code (1005 when it gave none, 1006 when it just went away).
    case closed(code: Int, reason: String)
}

public struct AsyncResponseHead: Sendable {
    public var status: Int
    /// The reason phrase as a WSGI app gave it; nil sends the standard one (ASGI has none).
    public var reason: String?
    public var headers: [(name: String, value: String)]
    public init(status: Int, reason: String? = nil, headers: [(name: String, value: String)]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// What the app's loop is told about a request (the app's thread then asks the exchange for the details).
public enum AsyncEvent: Int, Sendable {
    case start = 0
    /// Body bytes (or its end) arrived while the app waited for them.
    case body = 1
    /// The client left while the app waited to read or to write.
    case disconnect = 2
    /// The bytes the app sent have drained below the low-water mark.
    case writable = 3
}

/// One request to an async app, shared by the connection's loop (which feeds the body and reports the client's
/// state) and the app's thread (which reads the body and sends the response). All shared state is under one mutex;
/// the app is told of a change only when it waits for it (`notify`), so a fast request costs one wake-up.
public final class AsyncExchange: Sendable {
    public enum BodyRead {
        case bytes(ByteBuffer, more: Bool)
        /// Nothing to give yet: the app is told with `.body` or `.disconnect` when there is.
        case wait
        case disconnected
    }

    public enum SendResult {
        case sent
        /// Sent, but over the high-water mark: the app should wait for `.writable` before sending more.
        case wait
        case disconnected
    }

    /// Request bytes queued before the connection stops reading, and the level at which it reads again.
    static let bodyHighWater = 256 * 1024
    static let bodyLowWater = 64 * 1024
    /// Response bytes handed to the connection and not yet written, before the app is asked to wait.
    static let sendHighWater = 256 * 1024
    static let sendLowWater = 64 * 1024

    public let id: Int
    public let request: Request
    public let connection: any AsyncConnection
    /// The request has a body to read (else the app's first read gets an empty, final one).
    public let bodyExpected: Bool
    /// An `Upgrade: websocket` request whose handshake the connection checked: the app gets a websocket scope.
    public let isWebSocket: Bool

    private struct State {
        var chunks: CircularBuffer<ByteBuffer> = []
        var queuedBody = 0
        var bodyEnded = false
        var bodyDelivered = false
        var readingPaused = false
        var gone = false
        var waitingForBody = false
        var queuedOut = 0
        var waitingForWritable = false
        var notify: (@Sendable (AsyncExchange, AsyncEvent) -> Void)?
        var messages: CircularBuffer<WebSocketInbound> = []
        var closedCode: Int?

        /// The app's notifier if it waits for body bytes (and it no longer does).
        mutating func takeWaiter() -> (@Sendable (AsyncExchange, AsyncEvent) -> Void)? {
            guard waitingForBody else { return nil }
            waitingForBody = false
            return notify
        }
    }
    private let state: Mutex<State>

    public init(id: Int, request: Request, connection: any AsyncConnection, bodyExpected: Bool, isWebSocket: Bool = false) {
        self.id = id
        self.request = request
        self.connection = connection
        self.bodyExpected = bodyExpected
        self.isWebSocket = isWebSocket
        var initial = State()
        initial.bodyEnded = !bodyExpected
        state = Mutex(initial)
    }

    /// Set by the app before it is told of the request: how it is woken.
    public func setNotify(_ notify: @escaping @Sendable (AsyncExchange, AsyncEvent) -> Void) {
        state.withLock { $0.notify = notify }
    }

    // MARK: the connection's side

    /// Queues body bytes; true when the connection should stop reading until `resumeReading`.
    public func appendBody(_ bytes: ByteBuffer) -> Bool {
        let (wake, pause) = state.withLock { state -> ((@Sendable (AsyncExchange, AsyncEvent) -> Void)?, Bool) in
            state.chunks.append(bytes)
            state.queuedBody += bytes.readableBytes
            let pause = state.queuedBody > Self.bodyHighWater
            if pause { state.readingPaused = true }
            return (state.takeWaiter(), pause)
        }
        wake?(self, .body)
        return pause
    }

    public func endBody() {
        let wake = state.withLock { state in
            state.bodyEnded = true
            return state.takeWaiter()
        }
        wake?(self, .body)
    }

    /// The client closed the connection: reads and sends fail from now on.
    public func connectionClosed() {
        let wake = state.withLock { state -> (@Sendable (AsyncExchange, AsyncEvent) -> Void)? in
            state.gone = true
            guard state.waitingForBody || state.waitingForWritable else { return nil }
            state.waitingForBody = false
            state.waitingForWritable = false
            return state.notify
        }
        wake?(self, .disconnect)
    }

    /// `count` bytes the app sent have left for the socket (or were dropped with the connection).
    public func written(_ count: Int) {
        let wake = state.withLock { state -> (@Sendable (AsyncExchange, AsyncEvent) -> Void)? in
            state.queuedOut -= count
            guard state.waitingForWritable, state.queuedOut <= Self.sendLowWater else { return nil }
            state.waitingForWritable = false
            return state.notify
        }
        wake?(self, .writable)
    }

    // MARK: the app's side

    /// Everything queued so far as one buffer, or why there is nothing.
    public func readBody() -> BodyRead {
        let (read, resume) = state.withLock { state -> (BodyRead, Bool) in
            if state.gone { return (.disconnected, false) }
            if !state.chunks.isEmpty {
                var joined = state.chunks.removeFirst()
                while var next = state.chunks.popFirst() { joined.writeBuffer(&next) }
                state.queuedBody = 0
                let resume = state.readingPaused
                state.readingPaused = false
                let more = !state.bodyEnded
                if !more { state.bodyDelivered = true }
                return (.bytes(joined, more: more), resume)
            }
            if state.bodyEnded && !state.bodyDelivered {
                state.bodyDelivered = true
                return (.bytes(ByteBuffer(), more: false), false)
            }
            state.waitingForBody = true
            return (.wait, false)
        }
        if resume { connection.resumeReading() }
        return read
    }

    /// Hands the response's bytes to the connection.
    public func send(head: AsyncResponseHead?, body: ByteBuffer, more: Bool) -> SendResult {
        let result = state.withLock { state -> SendResult in
            if state.gone { return .disconnected }
            state.queuedOut += body.readableBytes
            guard state.queuedOut > Self.sendHighWater, more else { return .sent }
            state.waitingForWritable = true
            return .wait
        }
        if case .disconnected = result {
            // The app meant to end its response: the connection still has to count the request as done.
            if !more { connection.fail(for: self) }
            return result
        }
        connection.send(head: head, body: body, more: more, for: self)
        return result
    }

    // MARK: WebSockets

    /// A client message (or its close) for the app; true when the connection should stop reading for now.
    public func receiveWebSocket(_ message: WebSocketInbound) -> Bool {
        let (wake, pause) = state.withLock { state -> ((@Sendable (AsyncExchange, AsyncEvent) -> Void)?, Bool) in
            if case .closed(let code, _) = message { state.closedCode = code }
            state.messages.append(message)
            if case .binary(let bytes) = message { state.queuedBody += bytes.readableBytes }
            if case .text(let text) = message { state.queuedBody += text.utf8.count }
            let pause = state.queuedBody > Self.bodyHighWater
            if pause { state.readingPaused = true }
            return (state.takeWaiter(), pause)
        }
        wake?(self, .body)
        return pause
    }

    public enum WebSocketRead {
        case message(WebSocketInbound)
        case wait
    }

    /// The next client message, or `.wait` (the app is told with `.body` when one comes). After the close, the
    /// close again (the app may ask twice).
    public func readWebSocket() -> WebSocketRead {
        let (read, resume) = state.withLock { state -> (WebSocketRead, Bool) in
            if let message = state.messages.popFirst() {
                switch message {
                case .binary(let bytes): state.queuedBody -= bytes.readableBytes
                case .text(let text): state.queuedBody -= text.utf8.count
                case .closed: break
                }
                let resume = state.readingPaused && state.queuedBody <= Self.bodyLowWater
                if resume { state.readingPaused = false }
                return (.message(message), resume)
            }
            if let code = state.closedCode { return (.message(.closed(code: code, reason: "")), false) }
            if state.gone { return (.message(.closed(code: 1006, reason: "")), false) }
            state.waitingForBody = true
            return (.wait, false)
        }
        if resume { connection.resumeReading() }
        return read
    }

    /// Hands a message to the connection, with the same accounting as `send` (wait past the high-water mark).
    public func sendWebSocket(_ message: WebSocketOutbound) -> SendResult {
        let result = state.withLock { state -> SendResult in
            if state.gone || state.closedCode != nil { return .disconnected }
            state.queuedOut += message.byteCount
            guard state.queuedOut > Self.sendHighWater else { return .sent }
            state.waitingForWritable = true
            return .wait
        }
        if case .disconnected = result { return result }
        connection.sendWebSocket(message, for: self)
        return result
    }

    /// True while the app should wait for `.writable` before sending more.
    public var isBlocked: Bool { state.withLock { !$0.gone && $0.waitingForWritable } }
}
