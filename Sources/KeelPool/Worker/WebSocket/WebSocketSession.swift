import KeelApp
import NIOCore
import NIOWebSocket

/// An accepted WebSocket between a client and an async app, after the 101: NIO's `WebSocketFrameDecoder` and
/// `WebSocketFrameEncoder` do the framing in front of it; this handler keeps RFC 6455's rules (masked client frames,
/// fragments joined up to `maxMessageSize`, UTF-8 text, ping answered with pong, the close handshake) and moves
/// whole messages between the wire and the app's exchange. The connection handler behind it still owns the exchange.
final class WebSocketSession: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let exchange: AsyncExchange
    private let maxMessageSize: Int
    private var context: ChannelHandlerContext?
    private var fragments: ByteBuffer?
    private var fragmentsAreText = false
    private var closeSent = false
    private var closeReceived = false
    /// Reading stops while the app has a backlog of messages (`resume` restarts it).
    private var paused = false
    private var readHeldBack = false

    init(exchange: AsyncExchange, maxMessageSize: Int) {
        self.exchange = exchange
        self.maxMessageSize = maxMessageSize
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closeReceived else { return }
        // RFC 6455 §5.1: a server closes the connection on an unmasked client frame.
        guard frame.maskKey != nil else { return fail(.protocolError, "an unmasked client frame") }
        guard !frame.rsv1 && !frame.rsv2 && !frame.rsv3 else { return fail(.protocolError, "reserved bits set (no extension agreed)") }
        switch frame.opcode {
        case .ping:
            guard !closeSent else { return }
            context.writeAndFlush(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            break
        case .text, .binary:
            guard fragments == nil else { return fail(.protocolError, "a new message before the last one's end") }
            if frame.fin {
                deliver(frame.unmaskedData, text: frame.opcode == .text)
            } else {
                guard frame.length <= maxMessageSize else { return fail(.messageTooLarge, "a message over --ws-max-size") }
                fragments = frame.unmaskedData
                fragmentsAreText = frame.opcode == .text
            }
        case .continuation:
            guard var joined = fragments else { return fail(.protocolError, "a continuation frame with no message") }
            guard joined.readableBytes + frame.length <= maxMessageSize else {
                return fail(.messageTooLarge, "a message over --ws-max-size")
            }
            var data = frame.unmaskedData
            fragments = nil
            joined.writeBuffer(&data)
            if frame.fin { deliver(joined, text: fragmentsAreText) } else { fragments = joined }
        case .connectionClose:
            var data = frame.unmaskedData
            // RFC 6455 §5.5.1, §7.4: no payload, or a code a peer may send and a UTF-8 reason.
            guard data.readableBytes != 1 else { return fail(.protocolError, "a close frame of one byte") }
            let code = data.readInteger(as: UInt16.self).map(Int.init) ?? 1005
            guard code == 1005 || Self.isSendable(closeCode: code) else {
                return fail(.protocolError, "close code \(code), which a peer may not send")
            }
            guard let reason = String(validating: data.readableBytesView, as: UTF8.self) else {
                return fail(.protocolError, "a close reason that is not UTF-8")
            }
            closeReceived = true
            _ = exchange.receiveWebSocket(.closed(code: code, reason: reason))
            if closeSent {
                context.close(promise: nil)
            } else {
                // Answer with the client's code (RFC 6455 §5.5.1), then the server closes the TCP connection.
                closeSent = true
                var echo = context.channel.allocator.buffer(capacity: 2)
                if code != 1005 { echo.writeInteger(UInt16(code)) }
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)))
                    .whenComplete { _ in context.close(promise: nil) }
            }
        default:
            fail(.protocolError, "an unknown opcode")
        }
    }

    private func deliver(_ data: ByteBuffer, text: Bool) {
        let message: WebSocketInbound
        if text {
            guard let decoded = String(validating: data.readableBytesView, as: UTF8.self) else {
                return fail(.dataInconsistentWithMessage, "a text message that is not UTF-8")
            }
            message = .text(decoded)
        } else {
            message = .binary(data)
        }
        if exchange.receiveWebSocket(message) { paused = true }
    }

    func read(context: ChannelHandlerContext) {
        if paused { readHeldBack = true } else { context.read() }
    }

    func resume() {
        paused = false
        if readHeldBack, let context {
            readHeldBack = false
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The frame decoder's errors: a frame over the limit (1009), a malformed control frame (1002).
        if let error = error as? NIOWebSocketError {
            return fail(error == .invalidFrameLength ? .messageTooLarge : .protocolError, "\(error)")
        }
        context.fireErrorCaught(error)
    }

    /// The client broke the protocol: close with `code`, tell the app, log one line.
    private func fail(_ code: WebSocketErrorCode, _ what: String) {
        guard let context else { return }
        let number = Int(UInt16(webSocketErrorCode: code))
        WorkerLog.error("WebSocket \(exchange.request.uri): the client sent \(what): closed with \(number)")
        closeReceived = true
        _ = exchange.receiveWebSocket(.closed(code: number, reason: ""))
        sendClose(code: number, reason: "", context: context).whenComplete { _ in context.close(promise: nil) }
    }

    // MARK: the app's side (on the loop)

    func send(_ message: WebSocketOutbound, exchange: AsyncExchange) {
        guard let context, !closeSent else { return exchange.written(message.byteCount) }
        switch message {
        case .text(let bytes), .binary(let bytes):
            let opcode: WebSocketOpcode
            if case .text = message { opcode = .text } else { opcode = .binary }
            let count = bytes.readableBytes
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: bytes)))
                .whenComplete { _ in exchange.written(count) }
        case .close(let code, let reason):
            let closing = sendClose(code: code, reason: reason, context: context)
            // The client answers with its close; one that does not is closed after a second.
            let eventLoop = context.eventLoop
            closing.whenComplete { _ in
                eventLoop.scheduleTask(in: .seconds(1)) { context.close(promise: nil) }
            }
        }
    }

    /// The worker is stopping: the client is told the server is going away (1001); the app sees the close.
    func goingAway() {
        guard let context, !closeSent else { return }
        _ = exchange.receiveWebSocket(.closed(code: 1001, reason: ""))
        closeReceived = true
        sendClose(code: 1001, reason: "the server is going away", context: context).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// The app has returned: a close goes out if none has (1000, or 1011 when it raised), and the connection ends.
    func end(failed: Bool) {
        guard let context else { return }
        guard !closeSent else {
            if closeReceived { context.close(promise: nil) }
            return
        }
        sendClose(code: failed ? 1011 : 1000, reason: "", context: context).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Close codes an endpoint may put in a close frame (1004-1006 and 1015 are reserved, below 1000 unused).
    static func isSendable(closeCode code: Int) -> Bool {
        (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
    }

    @discardableResult
    private func sendClose(code: Int, reason: String, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        closeSent = true
        // A control frame carries at most 125 bytes: the reason is cut at a character boundary to fit.
        var reason = Substring(reason)
        while reason.utf8.count > 123 { reason = reason.dropLast() }
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.writeInteger(UInt16(clamping: code))
        data.writeString(String(reason))
        return context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)))
    }
}
