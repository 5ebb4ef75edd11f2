#if canImport(Glibc)
import Glibc
#endif
import KeelHTTP
import NIOCore
import NIOHTTP1

/// HTTPConnectionHandler's connection half: pipelined requests held until their turn (`PipelinedRequests`),
/// --socket-timeout between reads, and nginx's answers to requests NIO's parser refused. These were NIO's
/// `HTTPServerPipelineHandler`, `IdleStateHandler` and KeelHTTP's `HTTPProtocolErrorResponder` in front of this
/// handler; as state here a request skips three pipeline hops (measured: about 6 µs of a hello request's 47-53).
extension HTTPConnectionHandler {
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard pipeline.arrived(part) else { return }
        handle(part, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        lastRead = .now()
        context.fireChannelReadComplete()
    }

    /// After a kept-alive response: the requests queued behind it go on (one may be answered, and the next handed
    /// on, within this loop), then a read withheld while the queue was full is passed on (unless the body queue
    /// holds it back in turn).
    func deliverQueued(context: ChannelHandlerContext) {
        guard !deliveringQueued else { return }
        deliveringQueued = true
        defer { deliveringQueued = false }
        while let part = pipeline.nextDeliverable() { handle(part, context: context) }
        if pipeline.owesRead() { read(context: context) }
    }

    // MARK: --socket-timeout

    func scheduleIdleCheck(in delay: TimeAmount, context: ChannelHandlerContext) {
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.checkIdle()
        }
    }

    /// One task at a time: a read since it was scheduled moves the next check, it does not reschedule per read.
    private func checkIdle() {
        guard let context else { return }
        let quiet = NIODeadline.now() - lastRead
        guard quiet >= socketTimeout else {
            scheduleIdleCheck(in: socketTimeout - quiet, context: context)
            return
        }
        lastRead = .now()
        scheduleIdleCheck(in: socketTimeout, context: context)
        readTimedOut(context: context)
    }

    /// Nothing was read for --socket-timeout: what that means depends on where the request is.
    private func readTimedOut(context: ChannelHandlerContext) {
        switch state {
        case .idle:
            context.close(promise: nil)  // keep-alive connection idle past --socket-timeout
        case .receiving(let head, _, _):
            WorkerLog.error("\(head.method) \(head.uri): request not received within --socket-timeout: 408")
            state = .discarding
            writeErrorAndClose(to: head, status: 408, "Request Timeout\n")
        case .streaming(let head, let body, let received):
            // A paused connection waits for the app, not for the client.
            guard !readingPaused else { return }
            WorkerLog.error(
                "\(head.method) \(head.uri): request body stalled after \(received) bytes (--socket-timeout): closed")
            body.receiveFailure("the request body stalled after \(received) bytes (--socket-timeout)")
            state = .running
            context.close(promise: nil)
        case .skipping:
            context.close(promise: nil)
        case .running where asyncExchange != nil && pendingBytes > 0:
            // An async app's response waits on a client that reads nothing: no write for a whole period ends it.
            guard writesCompleted == writesAtLastCheck else {
                writesAtLastCheck = writesCompleted
                return
            }
            WorkerLog.error("\(asyncExchange!.request.requestLine): the client read nothing for --socket-timeout: closed")
            context.close(promise: nil)
        case .running, .discarding:
            break  // the app is working, or an error response is on its way
        }
    }

    // MARK: errors

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            return refuseMalformed(parserError, context: context)
        }
        if let error = error as? IOError, error.errnoCode == ECONNRESET || error.errnoCode == EPIPE {
            context.close(promise: nil)
            return
        }
        WorkerLog.error("http connection from \(context.channel.remoteAddress?.description ?? "unknown peer"): \(error)")
        context.close(promise: nil)
    }

    /// A request NIO's parser refused, answered as nginx would: 431 for a header block over the limit, 400 for
    /// anything else malformed (request-smuggling shapes among them), one log line, then the connection closes.
    /// No answer of its own where a response already began or the app still owes one: that one ends the connection.
    private func refuseMalformed(_ parserError: HTTPParserError, context: ChannelHandlerContext) {
        let status = parserError == .headerOverflow ? 431 : 400
        let peer = context.channel.remoteAddress?.description ?? "unknown peer"
        WorkerLog.error("malformed HTTP request from \(peer) (\(parserError)): answered \(status)")
        let message = status == 431 ? "Request header block too large\n" : "Malformed HTTP request\n"
        let unknownRequest = HTTPRequestHead(version: .http1_1, method: .GET, uri: "")
        switch state {
        case .idle, .receiving:
            // No response is under way in these states: every early answer moves to .discarding first.
            state = .discarding
            writeErrorAndClose(to: unknownRequest, status: status, message)
        case .streaming(_, let body, _):
            body.receiveFailure("the request body is malformed (\(parserError))")
            state = .running
            if responseStarted { return context.close(promise: nil) }
            // The app's own answer, when it comes, goes nowhere: this one ends the connection.
            self.context = nil
            writeMalformedAnswer(status: status, message, context: context)
        case .running:
            // A pipelined request after the one the app is answering: that answer goes out, then the connection closes.
            keepAlive = false
        case .discarding, .skipping:
            context.close(promise: nil)
        }
    }

    /// 400/431 written straight to the channel, for when the app is still running and owns the response path.
    private func writeMalformedAnswer(status: Int, _ message: String, context: ChannelHandlerContext) {
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status),
            headers: ["Connection": "close", "Content-Type": "text/plain", "Content-Length": String(message.utf8.count)])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: message)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
