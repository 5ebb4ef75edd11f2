import NIOCore
import NIOHTTP1

/// Answers a request NIO's parser rejected, as nginx would: 431 for a header block over the parser's
/// limit (80 KiB), 400 for anything else malformed, with one log line either way, then the decoder
/// closes the connection. (NIO's own HTTPServerProtocolErrorHandler answers 400 to everything.)
final class HTTPProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A response already begun cannot be followed by an error response.
    private var responseInProgress = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        let peer = context.remoteAddress?.description ?? "unknown peer"
        WorkerLog.error("malformed HTTP request from \(peer) (\(parserError)): answered \(status.code)")
        if !responseInProgress {
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

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responseInProgress = true  // 1xx heads are interim
        case .end: responseInProgress = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
