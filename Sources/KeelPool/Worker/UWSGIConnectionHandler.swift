#if canImport(Glibc)
import Glibc
#endif
import KeelApp
import NIOCore
import UWSGI

/// ByteToMessageDecoder face of the pure `UWSGIRequestParser`.
struct UWSGIRequestDecoder: ByteToMessageDecoder {
    typealias InboundOut = UWSGIRequestParser.Event
    private var parser = UWSGIRequestParser()

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Drain every event the bytes allow here: `.end` of a body-less request needs no further byte.
        while let event = try parser.next(&buffer) {
            context.fireChannelRead(wrapInboundOut(event))
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        _ = try decode(context: context, buffer: &buffer)
        try parser.finish(leftover: buffer)
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}

/// One uwsgi connection carries one request: collect it, run the app, write a raw HTTP response, close.
final class UWSGIConnectionHandler: ChannelInboundHandler, ResponseSink, DrainableConnection {
    typealias InboundIn = UWSGIRequestParser.Event
    typealias OutboundOut = ByteBuffer

    private enum State {
        case waitingForHead
        case receivingBody(UWSGIRequestHead, ByteBuffer)
        case running
        case responding(closeDelimited: Bool)
        case done
    }

    private let configuration: WorkerConfiguration
    private let scheduler: RequestScheduler
    private var state: State = .waitingForHead
    /// The connection holds one of the worker's thread slots from accept (or next request) to response end.
    private var holdsSlot = true
    private var context: ChannelHandlerContext?
    private var isHead = false

    init(configuration: WorkerConfiguration, scheduler: RequestScheduler) {
        self.configuration = configuration
        self.scheduler = scheduler
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduler.connectionOpened(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        giveSlot()
        self.context = nil
        scheduler.connectionClosed(self)
        context.fireChannelInactive()
    }

    private func giveSlot() {
        if holdsSlot {
            holdsSlot = false
            scheduler.giveSlot()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .waitingForHead):
            if head.contentLength > configuration.limitPost && configuration.limitPost > 0 {
                WorkerLog.error(
                    "request body of \(head.contentLength) bytes is over --limit-post \(configuration.limitPost): "
                        + "answered 413")
                writeErrorAndClose(status: 413, "Request Entity Too Large\n")
                return
            }
            var body = context.channel.allocator.buffer(capacity: min(head.contentLength, 1 << 20))
            body.clear()
            state = .receivingBody(head, body)
        case (.body(var chunk), .receivingBody(let head, var body)):
            state = .running  // drop the reference so the append below does not copy
            body.writeBuffer(&chunk)
            state = .receivingBody(head, body)
        case (.end, .receivingBody(let head, let body)):
            dispatch(head: head, body: body)
        default:
            break
        }
    }

    private func dispatch(head: UWSGIRequestHead, body: ByteBuffer) {
        state = .running
        let request = Request(vars: head.vars, body: body)
        isHead = request.method == "HEAD"
        AppRunner.run(request, handler: configuration.handler, sink: self, scheduler: scheduler) {}
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as UWSGIError:
            if case .httpRequestOnUWSGISocket = error {
                WorkerLog.error(error.description)
                writeErrorAndClose(status: 400, "This is a uwsgi socket, not HTTP. \(error)\n")
                return
            }
            WorkerLog.error("\(error) (from \(context.remoteAddress?.description ?? "unknown peer"))")
        case let error as IOError where error.errnoCode == ECONNRESET || error.errnoCode == EPIPE:
            break
        default:
            WorkerLog.error("uwsgi connection: \(error)")
        }
        context.close(promise: nil)
    }

    private func writeErrorAndClose(status: Int, _ message: String) {
        state = .done
        writeResponseHead(status: status, headers: [("Content-Type", "text/plain")], contentLength: message.utf8.count)
        _ = writeResponseBody(ByteBuffer(string: message))
        endResponse()
    }

    func drain() {
        // A uwsgi connection always closes after its one response; only idle ones are closed now.
        if case .waitingForHead = state { context?.close(promise: nil) }
    }

    // MARK: ResponseSink

    func writeResponseHead(status: Int, headers: [(name: String, value: String)], contentLength: Int?) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 256)
        HTTPResponseHeadWriter.write(
            status: status, headers: headers, contentLength: contentLength, chunked: false, into: &buffer)
        state = .responding(closeDelimited: contentLength == nil)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    func writeResponseBody(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        guard let context else { return scheduler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if isHead { return context.eventLoop.makeSucceededVoidFuture() }
        return context.writeAndFlush(wrapOutboundOut(bytes))
    }

    func endResponse() {
        giveSlot()
        guard let context else { return }
        state = .done
        // uwsgi has no keep-alive: the close marks the end of the response for close-delimited bodies.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func abortResponse() {
        giveSlot()
        state = .done
        context?.close(promise: nil)
    }
}
