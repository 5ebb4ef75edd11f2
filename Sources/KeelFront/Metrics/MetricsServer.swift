import NIOCore
import NIOHTTP1
import NIOPosix

/// `[metrics] listen`: a listener of its own that answers `GET /metrics` with the Prometheus text exposition and
/// 404 otherwise. Kept apart from keel's public listeners so a scrape never meets routes, limits or TLS.
enum MetricsServer {
    static func start(
        _ listener: FrontConfiguration.Listener, server: FrontServer, group: any EventLoopGroup
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A scraper that goes quiet for a minute is let go, so idle connections cannot pile up.
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(60)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(server: server))
                }
            }
            .bind(host: listener.host, port: listener.port).get()
    }
}

/// One scrape per request: every loop's samples are handed over first, then the registry is written out.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: FrontServer
    private var head: HTTPRequestHead?

    init(server: FrontServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead): head = requestHead
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            answer(head, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else { return context.fireUserInboundEventTriggered(event) }
        context.close(promise: nil)
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics", head.method == .GET || head.method == .HEAD else {
            return respond(
                .notFound, "text/plain; charset=utf-8", Array("Not Found: metrics are at /metrics\n".utf8), head,
                context)
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        server.metricsExposition(on: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(let bytes):
                handler.respond(.ok, "text/plain; version=0.0.4; charset=utf-8", bytes, head, context)
            case .failure(let error):
                handler.respond(
                    .internalServerError, "text/plain; charset=utf-8", Array("\(error)\n".utf8), head, context)
            }
        }
    }

    private func respond(
        _ status: HTTPResponseStatus, _ contentType: String, _ body: [UInt8], _ head: HTTPRequestHead,
        _ context: ChannelHandlerContext
    ) {
        let keepAlive = head.isKeepAlive
        var headers: HTTPHeaders = ["Content-Type": contentType, "Content-Length": String(body.count)]
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}

@available(*, unavailable)
extension MetricsHTTPHandler: Sendable {}
