import KeelApp
import NIOCore

/// What a connection offers the app runner: the writes of one response, always called on the event loop.
protocol ResponseSink: AnyObject {
    /// `contentLength` nil means a streamed body of unknown length.
    func writeResponseHead(status: Int, headers: [(name: String, value: String)], contentLength: Int?)
    /// Completes when the bytes are handed to the socket (the streaming backpressure point).
    func writeResponseBody(_ bytes: ByteBuffer) -> EventLoopFuture<Void>
    func endResponse()
    /// The response cannot be finished (the app failed mid-stream): close without completing it.
    func abortResponse()
    /// Body bytes handed to the channel and not yet written to the socket.
    var pendingBytes: Int { get }
}

/// Runs one request through the app on the scheduler's thread and writes the response through a sink.
/// Shared by the uwsgi and HTTP connection handlers so both protocols behave the same.
enum AppRunner {
    static func run(
        _ request: Request,
        handler: any Handler,
        sink: any ResponseSink,
        scheduler: RequestScheduler,
        completion: @escaping () -> Void
    ) {
        let eventLoop = scheduler.eventLoop
        let inline = scheduler.runsInline
        let writeTimeout = scheduler.writeTimeout
        let boundSink = NIOLoopBound(sink, eventLoop: eventLoop)
        scheduler.execute(
            requestLine: request.requestLineParts,
            {
                let response = respond(to: request, with: handler)
                switch response.body {
                case .bytes(let bytes):
                    onLoop(eventLoop) {
                        let sink = boundSink.value
                        sink.writeResponseHead(
                            status: response.status, headers: response.headers.withoutFraming,
                            contentLength: bytes.readableBytes)
                        _ = sink.writeResponseBody(bytes)
                        sink.endResponse()
                    }
                case .stream(let produce):
                    let framing = streamFraming(of: response)
                    onLoop(eventLoop) {
                        boundSink.value.writeResponseHead(
                            status: response.status, headers: framing.headers, contentLength: framing.contentLength)
                    }
                    let writer = SinkBodyWriter(
                        sink: boundSink, eventLoop: eventLoop, inline: inline, timeout: writeTimeout)
                    do {
                        try produce(writer)
                        onLoop(eventLoop) { boundSink.value.endResponse() }
                    } catch {
                        WorkerLog.error("streamed response of \(request.requestLine) failed: \(error)")
                        onLoop(eventLoop) { boundSink.value.abortResponse() }
                    }
                }
            },
            completion: completion)
    }

    /// The app's response, or the error page it earned: HTTPError keeps its status, anything else is a 500.
    static func respond(to request: Request, with handler: any Handler) -> Response {
        do {
            let response = try handler.handle(request)
            if let problem = invalidHeader(in: response) {
                WorkerLog.error("app answered \(request.requestLine) with an invalid header (\(problem)): sent 500 instead")
                return Response(status: 500, "Internal Server Error\n")
            }
            guard (100...999).contains(response.status) else {
                WorkerLog.error("app answered \(request.requestLine) with status \(response.status): sent 500 instead")
                return Response(status: 500, "Internal Server Error\n")
            }
            return response
        } catch let error as HTTPError {
            return Response(status: error.status, error.message)
        } catch {
            WorkerLog.error("app failed on \(request.requestLine): \(error)")
            return Response(status: 500, "Internal Server Error\n")
        }
    }

    /// Header names must be HTTP tokens and values must not hold CR, LF or NUL, or a response could
    /// smuggle extra headers (RFC 9110 §5.1, §5.5). Returns what is wrong, or nil.
    static func invalidHeader(in response: Response) -> String? {
        for header in response.headers {
            if header.name.isEmpty || !header.name.utf8.allSatisfy(isTokenByte) {
                return "name \(header.name.debugDescription)"
            }
            if header.value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
                return "\(header.name) value holds CR, LF or NUL"
            }
        }
        return nil
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
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

/// Hands streamed chunks to the event loop; on an app thread it waits until each chunk is written,
/// so a slow client slows the app instead of growing memory.
struct SinkBodyWriter: BodyWriter {
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

    func write(_ bytes: ByteBuffer) throws {
        if inline {
            // On the I/O thread itself: waiting would deadlock, so the write is queued, up to a bound.
            guard sink.value.pendingBytes <= Self.maxQueuedInline else { throw ClientNotReading() }
            _ = sink.value.writeResponseBody(bytes)
            return
        }
        let sink = self.sink
        let eventLoop = self.eventLoop
        let timeout = self.timeout
        do {
            try eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                let written = sink.value.writeResponseBody(bytes)
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
