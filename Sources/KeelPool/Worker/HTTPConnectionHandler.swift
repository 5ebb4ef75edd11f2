#if canImport(Glibc)
import Glibc
#endif
import KeelApp
import KeelHTTP
import NIOCore
import NIOHTTP1

/// `--http-socket`: HTTP/1.1 with keep-alive and pipelining (KeelHTTP's `PipelinedRequests` holds a pipelined
/// request until the response before it has ended). Each request becomes the same CGI vars nginx's uwsgi_params
/// would send. A handler that streams the body (WSGI) gets the request at its head and reads the body through a
/// bounded queue; the connection stops reading while the queue is full (outbound `read` held back). Pipelining,
/// --socket-timeout and the answers to malformed requests are this handler's state, not handlers of their own
/// (HTTPConnectionHandler+Connection.swift): three pass-through handlers cost about 6 µs a request.
final class HTTPConnectionHandler: ChannelDuplexHandler, ResponseSink, DrainableConnection {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        case idle
        /// The body is buffered whole before the app runs (handlers that do not stream it).
        case receiving(HTTPRequestHead, RequestTarget, ByteBuffer)
        case discarding  // a refused body (413) is read and dropped until its end
        /// The app runs while its body still arrives through `body`.
        case streaming(HTTPRequestHead, any IncomingBody, received: Int)
        /// The app runs; the whole request has been received.
        case running
        /// The app has answered before reading all its body: the rest is read and dropped until its end,
        /// so the next request on the connection starts where it should (or the close resets nothing).
        case skipping(received: Int, close: Bool)
    }

    let configuration: WorkerConfiguration
    let scheduler: RequestScheduler
    let serverAddress: (name: String, port: String)
    /// Internal (not private) for HTTPConnectionHandler+Connection.swift, the same handler's connection half.
    var state: State = .idle
    /// The connection holds one of the worker's thread slots from accept (or next request) to response end.
    private var holdsSlot = true
    var draining = false
    var context: ChannelHandlerContext?
    private var responseVersion = HTTPVersion.http1_1
    private var isHeadRequest = false
    var keepAlive = true
    private var servedRequests = 0
    /// The current response's head has been written (a late 413 can then only close the connection).
    var responseStarted = false
    /// The streamed body's queue is full: `read` waits until the app makes room.
    var readingPaused = false
    var readHeldBack = false
    var pipeline = PipelinedRequests()
    /// Queued requests are being handed on: a response ended meanwhile does not start a nested round.
    var deliveringQueued = false
    /// --socket-timeout: the last read's time, checked by one scheduled task at a time (as IdleStateHandler did).
    var lastRead = NIODeadline.now()
    var idleCheck: Scheduled<Void>?
    private(set) var pendingBytes = 0
    /// Response writes completed, and their count at the last --socket-timeout check (an async response whose
    /// client stopped reading is cut, as the threads' write timeout cuts theirs).
    private(set) var writesCompleted = 0
    var writesAtLastCheck = 0
    /// The async app's request being answered on this connection, and its scoreboard row.
    var asyncExchange: AsyncExchange?
    var asyncRow = 0
    /// After an accepted WebSocket handshake: the session in front of this handler speaks frames.
    var webSocket: WebSocketSession?

    init(configuration: WorkerConfiguration, scheduler: RequestScheduler, serverAddress: (name: String, port: String)) {
        self.configuration = configuration
        self.scheduler = scheduler
        self.serverAddress = serverAddress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduler.connectionOpened(self)
        scheduleIdleCheck(in: socketTimeout, context: context)
    }

    var socketTimeout: TimeAmount { .seconds(Int64(configuration.socketTimeout)) }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        // A request still in the app keeps its slot until it ends (endResponse gives it back).
        switch state {
        case .streaming(_, let body, let received):
            body.receiveFailure("the client closed the connection after \(received) bytes of the request body")
            state = .running
        case .running:
            break
        default:
            giveSlot()
        }
        self.context = nil
        asyncExchange?.connectionClosed()
        webSocket = nil
        scheduler.connectionClosed(self)
        context.fireChannelInactive()
    }

    func giveSlot() {
        if holdsSlot {
            holdsSlot = false
            scheduler.giveSlot()
        }
    }

    /// One request part whose turn it is (channelRead queues pipelined ones until then).
    func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (part, state) {
        case (.head(let head), .idle):
            if !holdsSlot {
                holdsSlot = true
                scheduler.takeSlot()
            }
            let target: RequestTarget
            switch RequestHeadCheck.check(head) {
            case .accepted(let accepted):
                target = accepted
            case .refused(let status, let reason):
                let peer = context.channel.remoteAddress?.description ?? "unknown peer"
                WorkerLog.error("\(peer) sent \"\(head.method) \(head.uri)\": \(reason): \(status.code)")
                state = .discarding
                writeErrorAndClose(to: head, status: Int(status.code), "\(reason)\n")
                return
            }
            let declared = head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0
            if declared > configuration.effectiveBodyLimit {
                state = .discarding
                respondWithError(head: head, status: .payloadTooLarge, close: true)
                return
            }
            // Answered at once, as gunicorn does: the request is accepted, the app will get its body.
            if head.expectsContinue {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            // RequestHeadCheck let only a lone "chunked" through.
            let chunked = head.headers.contains(name: "transfer-encoding")
            if configuration.asyncApp != nil {
                startAsync(head: head, target: target, declaredLength: chunked ? nil : declared, context: context)
                return
            }
            if configuration.handler.streamsRequestBody && (declared > 0 || chunked) {
                startStreaming(head: head, target: target, declaredLength: chunked ? nil : declared, context: context)
                return
            }
            state = .receiving(head, target, context.channel.allocator.buffer(capacity: 0))
        case (.body(var chunk), .receiving(let head, let target, var body)):
            state = .idle  // drop the reference so the append below does not copy
            if body.readableBytes + chunk.readableBytes > configuration.effectiveBodyLimit {
                state = .discarding
                respondWithError(head: head, status: .payloadTooLarge, close: true)
                return
            }
            body.writeBuffer(&chunk)
            state = .receiving(head, target, body)
        case (.end, .receiving(let head, let target, let body)):
            dispatch(head: head, target: target, body: body, context: context)
        case (.body(let part), .streaming(let head, let body, let received)):
            let total = received + part.readableBytes
            guard total <= configuration.effectiveBodyLimit else {
                refuseStreamedBody(head: head, body: body)
                return
            }
            state = .streaming(head, body, received: total)
            if body.receive(part) { readingPaused = true }
        case (.end, .streaming(_, let body, _)):
            body.receiveEnd()
            state = .running
        case (.body(let part), .skipping(let received, let close)):
            let total = received + part.readableBytes
            // Past --limit-post the rest is not worth reading: closing ends it.
            guard total <= configuration.effectiveBodyLimit else {
                state = .idle
                context.close(promise: nil)
                return
            }
            state = .skipping(received: total, close: close)
        case (.end, .skipping(_, let close)):
            state = .idle
            if close { context.close(promise: nil) }
        case (.end, .discarding):
            state = .idle
        default:
            break
        }
    }

    func begin(_ head: HTTPRequestHead) {
        keepAlive = ConnectionPersistence.requested(by: head) && !draining
        responseVersion = head.version
        isHeadRequest = head.method == .HEAD
        responseStarted = false
    }

    private func dispatch(head: HTTPRequestHead, target: RequestTarget, body: ByteBuffer, context: ChannelHandlerContext) {
        begin(head)
        state = .running
        // The channel's addresses are cached; ChannelHandlerContext.remoteAddress is a getpeername per call.
        let request = Request(
            vars: HTTPRequestVars.make(
                head: head, target: target, bodyLength: body.readableBytes, remote: context.channel.remoteAddress,
                server: serverAddress),
            body: body)
        AppRunner.run(request, handler: configuration.handler, sink: self, scheduler: scheduler) {}
    }

    /// Hands the request to an app thread now; its body follows through a bounded queue.
    private func startStreaming(
        head: HTTPRequestHead, target: RequestTarget, declaredLength: Int?, context: ChannelHandlerContext
    ) {
        begin(head)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let body = StreamedRequestBody(declaredLength: declaredLength) {
            eventLoop.execute { handler.value.resumeReading() }
        }
        state = .streaming(head, body, received: 0)
        let request = Request(
            vars: HTTPRequestVars.make(
                head: head, target: target, bodyLength: declaredLength, remote: context.channel.remoteAddress,
                server: serverAddress),
            bodyReader: body)
        // Off the loop even with one thread: the app's body reads wait for this loop to fill the queue.
        AppRunner.run(request, handler: configuration.handler, sink: self, scheduler: scheduler, offLoop: true) {}
    }

    /// A chunked body crossed --limit-post while the app reads it: the app's read fails, the client gets
    /// a 413 if no response has started (else the connection is cut), and the app's own answer goes nowhere.
    private func refuseStreamedBody(head: HTTPRequestHead, body: any IncomingBody) {
        let limit = configuration.effectiveBodyLimit
        body.receiveFailure("the request body is over the limit of \(limit) bytes (--limit-post)")
        state = .running
        WorkerLog.error("\(head.method) \(head.uri): request body over the limit of \(limit) bytes (--limit-post): 413")
        guard let context else { return }
        self.context = nil
        guard !responseStarted else {
            context.close(promise: nil)
            return
        }
        let message = ByteBuffer(string: "Request body is over the limit of \(limit) bytes (--limit-post)\n")
        var responseHead = HTTPResponseHead(version: head.version, status: .payloadTooLarge)
        responseHead.headers = [
            "Content-Type": "text/plain", "Content-Length": String(message.readableBytes), "Connection": "close",
        ]
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(message))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    // MARK: backpressure

    func read(context: ChannelHandlerContext) {
        if webSocket != nil { return context.read() }  // the session holds reads back itself
        if readingPaused {
            readHeldBack = true
        } else if pipeline.allowsRead() {
            context.read()
        }
    }

    /// The app made room in the body queue (or is done with it): the connection reads again.
    func resumeReading() {
        if let webSocket { return webSocket.resume() }
        guard readingPaused else { return }
        readingPaused = false
        if readHeldBack, let context {
            readHeldBack = false
            read(context: context)
        }
    }

    private func respondWithError(head: HTTPRequestHead, status: HTTPResponseStatus, close: Bool) {
        let message = status == .payloadTooLarge
            ? "Request body is over the limit of \(configuration.effectiveBodyLimit) bytes (--limit-post)\n"
            : "\(status.reasonPhrase)\n"
        if status == .payloadTooLarge { WorkerLog.error("\(head.method) \(head.uri): \(message.dropLast()): 413") }
        writeErrorAndClose(to: head, status: Int(status.code), message)
    }

    /// A short text response from the worker itself (413, 408), after which the connection closes.
    func writeErrorAndClose(to head: HTTPRequestHead, status: Int, _ message: String) {
        keepAlive = false
        responseVersion = head.version
        isHeadRequest = head.method == .HEAD
        writeResponseHead(
            status: status, reason: nil, headers: [("Content-Type", "text/plain")], contentLength: message.utf8.count)
        _ = writeResponseBody(ByteBuffer(string: message))
        endResponse()
    }

    /// Idle keep-alive connections close now; a new one (maybe swept from the backlog) still gets its
    /// first request served, with `Connection: close`, or is closed by --socket-timeout.
    func drain() {
        draining = true
        if let webSocket { return webSocket.goingAway() }
        // The response under way says so, so the client does not pipeline more on this connection.
        keepAlive = false
        if case .idle = state, servedRequests > 0 { context?.close(promise: nil) }
    }

    // MARK: ResponseSink

    func writeResponseHead(status: Int, reason: String?, headers: [(name: String, value: String)], contentLength: Int?) {
        guard let context else { return }
        var fields = HTTPHeaders(headers)
        if let contentLength { fields.replaceOrAdd(name: "Content-Length", value: String(contentLength)) }
        keepAlive = ConnectionPersistence.keepsAlive(
            requested: keepAlive, requestVersion: responseVersion, isHeadRequest: isHeadRequest,
            responseHasLength: contentLength != nil)
        ConnectionPersistence.setConnectionHeader(&fields, version: responseVersion, keepAlive: keepAlive)
        var code = HTTPResponseStatus(statusCode: status)
        // The app's own phrase ("200 Okay-ish") is sent as given; NIO's init would replace it.
        if let reason, reason != code.reasonPhrase { code = .custom(code: UInt(status), reasonPhrase: reason) }
        var head = HTTPResponseHead(version: responseVersion, status: code)
        head.headers = fields
        responseStarted = true
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func writeResponseBody(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        guard let context else { return scheduler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if isHeadRequest || bytes.readableBytes == 0 { return context.eventLoop.makeSucceededVoidFuture() }
        let count = bytes.readableBytes
        pendingBytes += count
        let written = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(bytes))))
        written.whenComplete { [self] _ in
            pendingBytes -= count
            writesCompleted += 1
        }
        return written
    }

    func writeResponseFile(_ file: ResponseFile, length: Int) -> EventLoopFuture<Void> {
        guard let context else { return scheduler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if isHeadRequest || length == 0 { return context.eventLoop.makeSucceededVoidFuture() }
        // The region gets its own descriptor: NIO closes it, `file` closes the app's when dropped.
        let copy = dup(file.descriptor)
        guard copy >= 0 else { return context.eventLoop.makeFailedFuture(IOError(errnoCode: errno, reason: "dup")) }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: copy)
        let region = FileRegion(fileHandle: handle, readerIndex: file.offset, endIndex: file.offset + length)
        let written = context.writeAndFlush(wrapOutboundOut(.body(.fileRegion(region))))
        written.whenComplete { _ in
            try? handle.close()
            withExtendedLifetime(file) {}
        }
        return written
    }

    func endResponse() {
        giveSlot()
        servedRequests += 1
        pipeline.responseEnded()
        var close = !keepAlive || draining
        switch state {
        case .discarding:
            break
        case .streaming(_, let body, let received):
            // Closing with body bytes unread would reset the connection and could cut the response.
            body.abandonBody()
            state = .skipping(received: received, close: close)
            close = false
        default:
            state = .idle
        }
        // The queue may have filled up to the body's end, unread: the next request must be read.
        resumeReading()
        guard let context else { return }
        guard close else {
            // A kept connection needs no word of the write: no promise (and no future) per request.
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            deliverQueued(context: context)
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func abortResponse() {
        giveSlot()
        if case .streaming(_, let body, _) = state { body.abandonBody() }
        state = .idle
        readingPaused = false
        context?.close(promise: nil)
    }
}
