import KeelApp
import NIOCore

/// Where a connection puts a request body that arrives while the app runs: a thread's blocking queue
/// (`StreamedRequestBody`, WSGI) or an async app's exchange (ASGI, gevent).
protocol IncomingBody: AnyObject {
    /// Queues body bytes; true when the connection should stop reading until the app makes room.
    func receive(_ part: ByteBuffer) -> Bool
    func receiveEnd()
    /// The body cannot be finished (client gone, stalled, over --limit-post): the app's reads fail.
    func receiveFailure(_ reason: String)
    /// The app has answered: it will read no more.
    func abandonBody()
}

extension StreamedRequestBody: IncomingBody {
    func receive(_ part: ByteBuffer) -> Bool { append(part) == .pauseReading }
    func receiveEnd() { end() }
    func receiveFailure(_ reason: String) { fail(reason) }
    func abandonBody() { abandon() }
}

extension AsyncExchange: IncomingBody {
    func receive(_ part: ByteBuffer) -> Bool { appendBody(part) }
    func receiveEnd() { endBody() }
    /// An async app reads a body that cannot be finished as a disconnect (ASGI's http.disconnect).
    func receiveFailure(_ reason: String) { connectionClosed() }
    func abandonBody() {}
}
