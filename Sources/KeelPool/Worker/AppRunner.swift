import KeelApp
import NIOCore

/// What a connection offers the app runner: the writes of one response, always called on the event loop.
protocol ResponseSink: AnyObject {
    /// `contentLength` nil means a streamed body of unknown length; `reason` nil the standard phrase.
    func writeResponseHead(status: Int, reason: String?, headers: [(name: String, value: String)], contentLength: Int?)
    /// Completes when the bytes are handed to the socket (the streaming backpressure point).
    func writeResponseBody(_ bytes: ByteBuffer) -> EventLoopFuture<Void>
    /// Sends `length` bytes of the file from its offset; `file` is kept until the write completes.
    func writeResponseFile(_ file: ResponseFile, length: Int) -> EventLoopFuture<Void>
    func endResponse()
    /// The response cannot be finished (the app failed mid-stream): close without completing it.
    func abortResponse()
    /// Body bytes handed to the channel and not yet written to the socket.
    var pendingBytes: Int { get }
}

/// Runs one request through the app on the scheduler's thread and writes the response through a sink.
/// The response itself goes through `ResponseDelivery`, shared with the uwsgi threads.
enum AppRunner {
    static func run(
        _ request: Request,
        handler: any Handler,
        sink: any ResponseSink,
        scheduler: RequestScheduler,
        offLoop: Bool = false,
        completion: @escaping () -> Void
    ) {
        let transport = SinkTransport(
            sink: NIOLoopBound(sink, eventLoop: scheduler.eventLoop), eventLoop: scheduler.eventLoop,
            inline: scheduler.runsInline && !offLoop, timeout: scheduler.writeTimeout)
        scheduler.execute(
            requestLine: request.requestLineParts, offLoop: offLoop,
            {
                let response = respond(to: request, with: handler)
                ResponseDelivery(transport: transport, requestLine: request.requestLine).send(response)
            },
            completion: completion)
    }

    /// The app's response, or the error page it earned: HTTPError keeps its status, anything else is a 500.
    static func respond(to request: Request, with handler: any Handler) -> Response {
        do {
            return validated(try handler.handle(request), requestLine: request.requestLine)
        } catch {
            return errorResponse(for: error, requestLine: request.requestLine)
        }
    }

    /// `response`, or a 500 if its head cannot be sent as it is.
    static func validated(_ response: Response, requestLine: String) -> Response {
        guard ResponseHeadCheck.refuses(
            status: response.status, reason: response.reason, headers: response.headers, of: requestLine)
        else { return response }
        return Response(status: 500, "Internal Server Error\n")
    }

    /// The response to an app that threw before its head was sent.
    static func errorResponse(for error: any Error, requestLine: String) -> Response {
        if let error = error as? HTTPError { return Response(status: error.status, error.message) }
        WorkerLog.error("app failed on \(requestLine): \(error)")
        return Response(status: 500, "Internal Server Error\n")
    }

    /// What is wrong with the response's headers, or nil (see `ResponseHeadCheck`).
    static func invalidHeader(in response: Response) -> String? {
        ResponseHeadCheck.problem(status: 200, reason: nil, headers: response.headers)
    }

    /// A streamed body keeps a Content-Length the app declared (and its headers as given); otherwise
    /// the worker frames it (chunked or close-delimited) and drops any framing header the app set.
    static func streamFraming(of response: Response) -> (headers: [(name: String, value: String)], contentLength: Int?) {
        if let declared = response.header("Content-Length").flatMap({ Int($0) }) {
            return (response.headers.filter { $0.name.lowercased() != "content-length" }, declared)
        }
        return (response.headers.withoutFraming, nil)
    }

    static func onLoop(_ eventLoop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop {
            body()
        } else {
            eventLoop.execute(body)
        }
    }
}

/// The HTTP socket's transport: each step runs on the event loop; on an app thread, body writes wait
/// until each chunk is written, so a slow client slows the app instead of growing memory.
struct SinkTransport: ResponseTransport {
    let sink: NIOLoopBound<any ResponseSink>
    let eventLoop: any EventLoop
    let inline: Bool
    /// --socket-timeout: how long one chunk may wait for a client that does not read.
    let timeout: TimeAmount

    /// Inline, nothing can wait for the client, so this much queued for it ends the stream.
    static let maxQueuedInline = 8 << 20

    struct ClientNotReading: Error, CustomStringConvertible {
        var description: String { "the client stopped reading the response (--socket-timeout, or 8 MiB queued)" }
    }

    func writeWhole(status: Int, reason: String?, headers: [(name: String, value: String)], body: ByteBuffer) {
        let sink = self.sink
        AppRunner.onLoop(eventLoop) {
            sink.value.writeResponseHead(status: status, reason: reason, headers: headers, contentLength: body.readableBytes)
            _ = sink.value.writeResponseBody(body)
            sink.value.endResponse()
        }
    }

    func writeHead(status: Int, reason: String?, headers: [(name: String, value: String)], contentLength: Int?) {
        let sink = self.sink
        AppRunner.onLoop(eventLoop) {
            sink.value.writeResponseHead(status: status, reason: reason, headers: headers, contentLength: contentLength)
        }
    }

    func write(_ bytes: ByteBuffer) throws {
        if inline {
            // On the I/O thread itself: waiting would deadlock, so the write is queued, up to a bound.
            guard sink.value.pendingBytes <= Self.maxQueuedInline else { throw ClientNotReading() }
            _ = sink.value.writeResponseBody(bytes)
            return
        }
        try waitFor { sink in sink.writeResponseBody(bytes) }
    }

    func writeFile(_ file: ResponseFile, length: Int) throws {
        if inline {
            _ = sink.value.writeResponseFile(file, length: length)
            return
        }
        try waitFor { sink in sink.writeResponseFile(file, length: length) }
    }

    func end() {
        let sink = self.sink
        AppRunner.onLoop(eventLoop) { sink.value.endResponse() }
    }

    func abort() {
        let sink = self.sink
        AppRunner.onLoop(eventLoop) { sink.value.abortResponse() }
    }

    /// Runs a write on the loop and waits for it, at most --socket-timeout without progress.
    private func waitFor(_ write: @escaping @Sendable (any ResponseSink) -> EventLoopFuture<Void>) throws {
        let sink = self.sink
        let eventLoop = self.eventLoop
        let timeout = self.timeout
        do {
            try eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                let written = write(sink.value)
                // Closing the connection fails the write, which ends this wait.
                let deadline = eventLoop.scheduleTask(in: timeout) { sink.value.abortResponse() }
                written.whenComplete { _ in deadline.cancel() }
                return written
            }.wait()
        } catch {
            throw ClientNotReading()
        }
    }
}

extension Array where Element == (name: String, value: String) {
    /// The app's headers minus the framing ones, which the worker sets itself.
    var withoutFraming: [(name: String, value: String)] {
        filter {
            let lower = $0.name.lowercased()
            return lower != "content-length" && lower != "transfer-encoding"
        }
    }
}
