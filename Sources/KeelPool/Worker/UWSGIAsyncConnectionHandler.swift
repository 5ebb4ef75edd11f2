import KeelApp
import NIOCore
import UWSGI

/// A uwsgi connection (nginx's uwsgi_pass, keel) to an async app: the packet is parsed on the event loop as it
/// arrives (`UWSGIRequestParser`), the request goes to the app's loop at its head, the body follows through the
/// exchange, and the response is written as raw HTTP/1.1, classic uwsgi: Content-Length when known, else ended by
/// the close. One request per connection (a keel-wire offer is answered classically, which keel reads as such).
/// An accepted WebSocket handshake (101) puts NIO's WebSocket framing in front of this handler (`WebSocketUpgrade`).
final class UWSGIAsyncConnectionHandler: ChannelDuplexHandler, DrainableConnection, AsyncConnectionSide {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: WorkerConfiguration
    let scheduler: RequestScheduler
    private var context: ChannelHandlerContext?
    private var parser = UWSGIRequestParser()
    private var unread = ByteBuffer()
    private var exchange: AsyncExchange?
    private var row = 0
    private var holdsSlot = true
    private var headSent = false
    private var headOnly = false
    private var readingPaused = false
    private var readHeldBack = false
    private var requestSeen = false
    private var timeout: Scheduled<Void>?
    /// After an accepted WebSocket handshake: the session in front of this handler speaks frames.
    private var webSocket: WebSocketSession?

    init(configuration: WorkerConfiguration, scheduler: RequestScheduler) {
        self.configuration = configuration
        self.scheduler = scheduler
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduler.connectionOpened(self)
        // --socket-timeout for the packet: a peer that connects and sends nothing whole is closed.
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Int64(configuration.socketTimeout))) {
            [weak self] in
            guard let self, !self.requestSeen else { return }
            self.context?.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        self.context = nil
        exchange?.connectionClosed()
        webSocket = nil
        if exchange == nil { giveSlot() }
        scheduler.connectionClosed(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        unread.writeBuffer(&bytes)
        do {
            while let event = try parser.next(&unread) {
                switch event {
                case .head(let head):
                    start(head, context: context)
                case .body(let chunk):
                    if exchange?.appendBody(chunk) == true { readingPaused = true }
                case .end:
                    exchange?.endBody()
                }
            }
        } catch {
            let peer = context.channel.remoteAddress?.description ?? "a unix peer"
            WorkerLog.error("uwsgi request from \(peer): \(error): closed")
            exchange?.connectionClosed()
            context.close(promise: nil)
        }
    }

    private func start(_ head: UWSGIRequestHead, context: ChannelHandlerContext) {
        guard let app = configuration.asyncApp else { return }
        requestSeen = true
        timeout?.cancel()
        let request = Request(vars: head.vars)
        if head.contentLength > configuration.effectiveBodyLimit {
            let limit = configuration.effectiveBodyLimit
            WorkerLog.error("\(request.requestLine): request body over the limit of \(limit) bytes (--limit-post): 413")
            return answerAndClose(413, "Request body is over the limit of \(limit) bytes (--limit-post)\n", context: context)
        }
        headOnly = request.method == "HEAD"
        let isWebSocket = WebSocketHandshake.isUpgrade(request)
        if isWebSocket, let problem = WebSocketHandshake.problem(request) {
            WorkerLog.error("\(request.requestLine): \(problem): 400")
            return answerAndClose(400, "Bad WebSocket handshake: \(problem)\n", context: context)
        }
        let exchange = AsyncExchange(
            id: scheduler.nextExchangeID(), request: request,
            connection: AsyncLoopResponder(side: NIOLoopBound(self, eventLoop: context.eventLoop)),
            bodyExpected: !isWebSocket && head.contentLength > 0, isWebSocket: isWebSocket)
        self.exchange = exchange
        scheduler.executeAsync(requestLine: request.requestLineParts) { [self] row in
            self.row = row
            app.start(exchange)
        }
    }

    /// The worker's own answer before any app runs (400, 413), then the close.
    private func answerAndClose(_ status: Int, _ message: String, context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 256)
        HTTPResponseHeadWriter.write(
            status: status, headers: [("Content-Type", "text/plain")], contentLength: message.utf8.count, chunked: false,
            into: &out)
        out.writeString(message)
        giveSlot()
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in context.close(promise: nil) }
    }

    func read(context: ChannelHandlerContext) {
        if webSocket != nil { return context.read() }  // the session holds reads back itself
        if readingPaused { readHeldBack = true } else { context.read() }
    }

    func resumeReading() {
        if let webSocket { return webSocket.resume() }
        readingPaused = false
        if readHeldBack, let context {
            readHeldBack = false
            context.read()
        }
    }

    func drain() {
        if let webSocket { return webSocket.goingAway() }
        if !requestSeen { context?.close(promise: nil) }
    }

    private func giveSlot() {
        guard holdsSlot else { return }
        holdsSlot = false
        scheduler.giveSlot()
    }

    // MARK: the app's answer

    func asyncSend(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, exchange: AsyncExchange) {
        let count = body.readableBytes
        guard exchange === self.exchange, let context else {
            exchange.written(count)
            if !more, exchange === self.exchange { finish(close: true) }
            return
        }
        var out = context.channel.allocator.buffer(capacity: count + (head == nil ? 0 : 256))
        if let head {
            if head.isRefused(for: exchange) {
                exchange.written(count)
                return asyncFail(exchange: exchange)
            }
            let declared = head.declaredLength
            let switching = head.status == 101
            HTTPResponseHeadWriter.write(
                status: head.status, reason: head.reason, headers: switching ? head.headers : head.headers.withoutFraming,
                contentLength: switching ? nil : declared ?? (more ? nil : (headOnly ? nil : count)), chunked: false,
                into: &out)
            headSent = true
        }
        if !headOnly {
            var body = body
            out.writeBuffer(&body)
        }
        if out.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in exchange.written(count) }
        } else {
            exchange.written(count)
        }
        if !more { finish(close: true) }
    }

    func asyncFail(exchange: AsyncExchange) {
        guard exchange === self.exchange else { return }
        if webSocket != nil { return endWebSocket(failed: true, exchange: exchange) }
        if let context, !headSent {
            var out = context.channel.allocator.buffer(capacity: 128)
            HTTPResponseHeadWriter.write(
                status: 500, headers: [("Content-Type", "text/plain")], contentLength: 22, chunked: false, into: &out)
            out.writeStaticString("Internal Server Error\n")
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } else if context != nil {
            WorkerLog.error("app failed on \(exchange.request.requestLine) mid-response: connection cut")
        }
        finish(close: true)
    }

    // MARK: WebSockets

    /// The 101 goes out raw, then NIO's framing joins the pipeline in front of this handler; bytes that came after
    /// the packet go to its frame decoder.
    func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], exchange: AsyncExchange) {
        guard exchange === self.exchange, webSocket == nil, let context else { return }
        WebSocketHandshake.accept(
            exchange.request, subprotocol: subprotocol, extra: headers, channel: context.channel
        ).whenComplete { [self] result in
            guard case .success(let fields) = result, let context = self.context else {
                return asyncFail(exchange: exchange)
            }
            headSent = true
            var out = context.channel.allocator.buffer(capacity: 256)
            HTTPResponseHeadWriter.write(status: 101, headers: fields, contentLength: nil, chunked: false, into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            do {
                webSocket = try WebSocketUpgrade.install(
                    exchange: exchange, maxMessageSize: configuration.webSocketMaxSize,
                    pipeline: context.pipeline.syncOperations, position: .first)
                scheduler.webSocketAccepted(row: row)
                if scheduler.isDraining { webSocket?.goingAway() }
            } catch {
                WorkerLog.error("cannot start the WebSocket of \(exchange.request.requestLine): \(error)")
                return context.close(promise: nil)
            }
            if unread.readableBytes > 0 {
                let early = unread
                unread.clear()
                context.pipeline.fireChannelRead(NIOAny(early))
            }
        }
    }

    func sendWebSocket(_ message: WebSocketOutbound, exchange: AsyncExchange) {
        guard exchange === self.exchange, let webSocket else { return exchange.written(message.byteCount) }
        webSocket.send(message, exchange: exchange)
    }

    func endWebSocket(failed: Bool, exchange: AsyncExchange) {
        guard exchange === self.exchange else { return }
        webSocket?.end(failed: failed)
        self.exchange = nil
        scheduler.asyncFinished(row: row)
        giveSlot()
        if webSocket == nil { context?.close(promise: nil) }
    }

    private func finish(close: Bool) {
        exchange = nil
        scheduler.asyncFinished(row: row)
        giveSlot()
        guard let context else { return }
        // Classic uwsgi: the close ends the response (after what is queued has been written).
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
