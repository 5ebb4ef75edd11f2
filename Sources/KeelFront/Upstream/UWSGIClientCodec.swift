import NIOCore
import NIOHTTP1
import UWSGI

/// What an exchange writes on a uwsgi connection: the packet (header + vars) built for this request, then its body.
enum UWSGIRequestPart {
    case packet(ByteBuffer, isHEAD: Bool)
    case body(IOData)
}

/// Events of the keel wire that are not response parts, fired inbound to the relay.
enum KeelWireEvent {
    /// The response that follows is framed and comes from this worker; the connection persists.
    case responder(KeelWire.Responder)
    /// The server closes the connection and read nothing after its last response.
    case goodbye
    /// Sent at once when a goodbye is read (the goodbye itself follows the response parts before it): from now on
    /// the connection must not be parked or taken, even by a request started while those parts are delivered.
    case closing
}

/// A response the codec could not read; the connection is closed after it.
struct UpstreamProtocolError: Error, CustomStringConvertible {
    var error: UWSGIResponseParser.ParseError
    var description: String { "\(error)" }
}

/// The uwsgi protocol's part of an exchange (nginx's `create_request` and `process_header` callbacks): the packet
/// goes out as built, and what comes back is read by `UWSGIResponseParser`, a small purpose-built parser, into
/// response parts. The parts of one read are checked before any is passed on, so a response that is bad within its
/// first read (cut, longer than declared, malformed) gets the client a 502 rather than a half-sent answer.
final class UWSGIClientCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = UWSGIRequestPart
    typealias OutboundOut = IOData

    private var parser = UWSGIResponseParser()
    private var pending: ByteBuffer?
    /// A head was passed on: from then on an error can only cut the response.
    private var headPassed = false
    private var failed = false
    /// What the current read produced, in order, held until the read is known to be sound.
    private var parts: [Inbound] = []

    private enum Inbound {
        case part(HTTPClientResponsePart)
        /// Kept in order with the parts: a goodbye after a response's end must reach the relay after that end.
        case event(KeelWireEvent)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .packet(let packet, let isHEAD):
            parser.expectResponse(isHEAD: isHEAD)
            headPassed = false
            context.write(wrapOutboundOut(.byteBuffer(packet)), promise: promise)
        case .body(let body):
            context.write(wrapOutboundOut(body), promise: promise)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var incoming = unwrapInboundIn(data)
        if var held = pending.take() {
            held.writeBuffer(&incoming)
            incoming = held
        }
        do {
            while let event = try parser.next(&incoming) {
                try handle(event, context: context)
            }
        } catch {
            fail(error, context: context)
            return
        }
        if incoming.readableBytes > 0 { pending = incoming }
        passParts(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !failed {
            do {
                if let event = try parser.finish() { try handle(event, context: context) }
                passParts(context: context)
            } catch {
                fail(error, context: context)
            }
        }
        context.fireChannelInactive()
    }

    private func handle(_ event: UWSGIResponseParser.Event, context: ChannelHandlerContext) throws(UWSGIResponseParser.ParseError) {
        switch event {
        case .responder(let responder):
            parts.append(.event(.responder(responder)))
        case .goodbye:
            context.fireUserInboundEventTriggered(KeelWireEvent.closing)
            parts.append(.event(.goodbye))
        case .head(let head):
            var responseHead = HTTPResponseHead(
                version: HTTPVersion(major: 1, minor: head.versionMinor),
                status: HTTPResponseStatus(statusCode: head.status, reasonPhrase: head.reason))
            responseHead.headers = HTTPHeaders(head.headers)
            if head.closesConnection || !parser.isPersistent {
                responseHead.headers.replaceOrAdd(name: "connection", value: "close")
            }
            parts.append(.part(.head(responseHead)))
        case .body(let body):
            parts.append(.part(.body(body)))
        case .end:
            parts.append(.part(.end(nil)))
        }
    }

    private func passParts(context: ChannelHandlerContext) {
        guard !parts.isEmpty else { return }
        for inbound in parts {
            switch inbound {
            case .part(let part):
                if case .head = part { headPassed = true }
                context.fireChannelRead(wrapInboundOut(part))
            case .event(let event):
                context.fireUserInboundEventTriggered(event)
            }
        }
        parts.removeAll(keepingCapacity: true)
    }

    private func fail(_ error: UWSGIResponseParser.ParseError, context: ChannelHandlerContext) {
        failed = true
        // A head already on its way to the client must be followed by what came with it; otherwise drop it all.
        if headPassed { passParts(context: context) } else { parts.removeAll() }
        context.fireErrorCaught(UpstreamProtocolError(error: error))
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension UWSGIClientCodec: Sendable {}

extension Optional {
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}
