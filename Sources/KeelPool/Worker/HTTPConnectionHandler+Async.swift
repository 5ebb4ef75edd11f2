import KeelApp
import KeelHTTP
import NIOCore
import NIOHTTP1

/// HTTPConnectionHandler's side of an async app (ASGI, gevent): the request goes to the app's loop at its head,
/// the body follows through the exchange, and the app's sends come back to this loop as tasks. The connection
/// holds its slot (one of --worker-connections) until the response ends.
extension HTTPConnectionHandler: AsyncConnectionSide {
    func startAsync(head: HTTPRequestHead, target: RequestTarget, declaredLength: Int?, context: ChannelHandlerContext) {
        guard let app = configuration.asyncApp else { return }
        begin(head)
        let request = Request(
            vars: HTTPRequestVars.make(
                head: head, target: target, bodyLength: declaredLength, remote: context.channel.remoteAddress,
                server: serverAddress))
        let isWebSocket = WebSocketHandshake.isUpgrade(request)
        if isWebSocket, let problem = WebSocketHandshake.problem(request) {
            let peer = context.channel.remoteAddress?.description ?? "unknown peer"
            WorkerLog.error("\(peer) sent \"\(head.method) \(head.uri)\": \(problem): 400")
            state = .discarding
            return writeErrorAndClose(to: head, status: 400, "Bad WebSocket handshake: \(problem)\n")
        }
        // NIO's decoder parses nothing after an upgrade request: whatever the answer, the connection ends with it.
        if isWebSocket { keepAlive = false }
        let bodyExpected = !isWebSocket && (declaredLength.map { $0 > 0 } ?? true)
        let responder = AsyncLoopResponder(side: NIOLoopBound(self, eventLoop: context.eventLoop))
        let exchange = AsyncExchange(
            id: scheduler.nextExchangeID(), request: request, connection: responder, bodyExpected: bodyExpected,
            isWebSocket: isWebSocket)
        asyncExchange = exchange
        state = bodyExpected ? .streaming(head, exchange, received: 0) : .running
        scheduler.executeAsync(requestLine: request.requestLineParts) { [self] row in
            asyncRow = row
            app.start(exchange)
        }
    }

    /// The app's bytes, on this loop. A response whose connection is gone (or was answered by the worker
    /// instead) is only accounted for.
    func asyncSend(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, exchange: AsyncExchange) {
        let count = body.readableBytes
        guard exchange === asyncExchange, context != nil else {
            exchange.written(count)
            if !more, exchange === asyncExchange { finishAsync() }
            return
        }
        if let head {
            if head.isRefused(for: exchange) {
                exchange.written(count)
                return answerFailure(exchange)
            }
            writeResponseHead(
                status: head.status, reason: head.reason, headers: head.headers.withoutFraming,
                contentLength: head.declaredLength ?? (more ? nil : count))
        }
        if count > 0 {
            writeResponseBody(body).whenComplete { _ in exchange.written(count) }
        } else if more {
            context?.flush()  // a head sent with an empty first chunk
        }
        if !more { finishAsync() }
    }

    /// The app ended without finishing its response.
    func asyncFail(exchange: AsyncExchange) {
        guard exchange === asyncExchange else { return }
        if webSocket != nil { return endWebSocket(failed: true, exchange: exchange) }
        answerFailure(exchange)
    }

    // MARK: WebSockets

    /// The app accepted: the 101 goes out through the HTTP encoder, then the HTTP codec leaves the pipeline and
    /// the WebSocket framing takes its place (bytes read past the handshake move on to the frame decoder).
    func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], exchange: AsyncExchange) {
        guard exchange === asyncExchange, webSocket == nil, let context else { return }
        WebSocketHandshake.accept(
            exchange.request, subprotocol: subprotocol, extra: headers, channel: context.channel
        ).whenComplete { [self] result in
            guard case .success(let fields) = result, let context = self.context else {
                return answerFailure(exchange)
            }
            responseStarted = true
            keepAlive = false
            var head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols)
            head.headers = HTTPHeaders(fields)
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
            do {
                let sync = context.pipeline.syncOperations
                webSocket = try WebSocketUpgrade.install(
                    exchange: exchange, maxMessageSize: configuration.webSocketMaxSize, pipeline: sync,
                    position: .before(self))
                scheduler.webSocketAccepted(row: asyncRow)
                // Accepted while the worker leaves: told at once, as the ones already open were.
                if draining { webSocket?.goingAway() }
                sync.removeHandler(try sync.handler(type: HTTPResponseEncoder.self), promise: nil)
                sync.removeHandler(try sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
            } catch {
                WorkerLog.error("cannot start the WebSocket of \(exchange.request.requestLine): \(error)")
                context.close(promise: nil)
            }
        }
    }

    func sendWebSocket(_ message: WebSocketOutbound, exchange: AsyncExchange) {
        guard exchange === asyncExchange, let webSocket else { return exchange.written(message.byteCount) }
        webSocket.send(message, exchange: exchange)
    }

    /// The app returned from its WebSocket: a close goes out if none did; the request ends.
    func endWebSocket(failed: Bool, exchange: AsyncExchange) {
        guard exchange === asyncExchange else { return }
        webSocket?.end(failed: failed)
        asyncExchange = nil
        scheduler.asyncFinished(row: asyncRow)
        state = .idle
        giveSlot()
        if context == nil { return }
        if webSocket == nil { context?.close(promise: nil) }
    }

    private func answerFailure(_ exchange: AsyncExchange) {
        guard context != nil, !responseStarted else {
            if context != nil { WorkerLog.error("app failed on \(exchange.request.requestLine) mid-response: connection cut") }
            asyncExchange = nil
            scheduler.asyncFinished(row: asyncRow)
            return abortResponse()
        }
        keepAlive = false
        let message = ByteBuffer(string: "Internal Server Error\n")
        writeResponseHead(
            status: 500, reason: nil, headers: [("Content-Type", "text/plain")], contentLength: message.readableBytes)
        _ = writeResponseBody(message)
        finishAsync()
    }

    private func finishAsync() {
        asyncExchange = nil
        scheduler.asyncFinished(row: asyncRow)
        endResponse()
    }
}

extension AsyncResponseHead {
    /// The Content-Length the app declared, kept for the response; nil frames it by the body's own end.
    var declaredLength: Int? { headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } }

    /// True (logged) when the head cannot go out as the app gave it: the connection answers 500 instead.
    func isRefused(for exchange: AsyncExchange) -> Bool {
        ResponseHeadCheck.refuses(status: status, reason: reason, headers: headers, of: exchange.request.requestLine)
    }
}

/// A connection handler serving async apps (HTTP or uwsgi): what the exchange's calls become on its loop.
protocol AsyncConnectionSide: AnyObject {
    func asyncSend(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, exchange: AsyncExchange)
    func asyncFail(exchange: AsyncExchange)
    func resumeReading()
    func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], exchange: AsyncExchange)
    func sendWebSocket(_ message: WebSocketOutbound, exchange: AsyncExchange)
    func endWebSocket(failed: Bool, exchange: AsyncExchange)
}

/// The exchange's way back to its connection: every call becomes a task on the connection's loop.
final class AsyncLoopResponder<Side: AsyncConnectionSide>: AsyncConnection {
    let side: NIOLoopBound<Side>

    init(side: NIOLoopBound<Side>) { self.side = side }

    func send(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, for exchange: AsyncExchange) {
        side.eventLoop.execute { [side] in side.value.asyncSend(head: head, body: body, more: more, exchange: exchange) }
    }

    func fail(for exchange: AsyncExchange) {
        side.eventLoop.execute { [side] in side.value.asyncFail(exchange: exchange) }
    }

    func resumeReading() {
        side.eventLoop.execute { [side] in side.value.resumeReading() }
    }

    func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], for exchange: AsyncExchange) {
        side.eventLoop.execute { [side] in
            side.value.acceptWebSocket(subprotocol: subprotocol, headers: headers, exchange: exchange)
        }
    }

    func sendWebSocket(_ message: WebSocketOutbound, for exchange: AsyncExchange) {
        side.eventLoop.execute { [side] in side.value.sendWebSocket(message, exchange: exchange) }
    }

    func endWebSocket(failed: Bool, for exchange: AsyncExchange) {
        side.eventLoop.execute { [side] in side.value.endWebSocket(failed: failed, exchange: exchange) }
    }
}
