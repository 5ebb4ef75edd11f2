import NIOCore
import NIOHTTP1

/// Answers a request NIO's parser rejected, as nginx would: 431 for a header block over the parser's
/// limit, 400 for anything else malformed (request smuggling shapes among them), with one log line either
/// way, then closes the connection. (NIO's own HTTPServerProtocolErrorHandler answers 400 to everything.)
/// Shared by keel's front and keel-pool's HTTP socket.
public final class HTTPProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias InboundOut = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private let log: (String) -> Void

    /// `log` receives one line per rejected request.
    public init(log: @escaping (String) -> Void) {
        self.log = log
    }

    /// A response already begun cannot be followed by an error response.
    private var responseInProgress = false
    /// The current request was answered before its end arrived (an early 413/408): a parse error in the rest of
    /// its body must not produce a second response.
    private var answeredEarly = false
    private var requestComplete = true

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestComplete = false
            answeredEarly = false
        case .end:
            requestComplete = true
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        let peer = context.channel.remoteAddress?.description ?? "unknown peer"
        log("malformed HTTP request from \(peer) (\(parserError)): answered \(status.code)")
        if !responseInProgress && !answeredEarly {
            let message = status == .requestHeaderFieldsTooLarge
                ? "Request header block too large\n" : "Malformed HTTP request\n"
            let headers = HTTPHeaders([
                ("Connection", "close"), ("Content-Type", "text/plain"), ("Content-Length", String(message.utf8.count)),
            ])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: message)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(promise: nil)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:  // 1xx heads are interim
            responseInProgress = true
            if !requestComplete { answeredEarly = true }
        case .end: responseInProgress = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
