import KeelHTTP
import NIOCore
import NIOHTTP1
import NIOHTTP2
import UWSGI

/// One client connection's requests, one at a time: read the head, route it, buffer the body within the limits,
/// answer from the route's action, log the outcome. Every request that reached this handler ends in a response or an
/// access-log line saying why not (499, aborted). Writing the responses (filters, access log, keep-alive or lingering
/// close) is in ProxyHandler+Replies.swift; the connection's timeouts, pipelining and graceful stop, kept as state
/// machines rather than handlers of their own, in ProxyHandler+Connection.swift.
final class ProxyHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Internal (not private) for ProxyHandler+Replies.swift, the same handler's writing half.
    enum State {
        case idle
        /// Head routed, body arriving.
        case receiving(RequestInFlight, RequestBodyBuffer)
        /// A response was already decided (413, 400, 404 …); the rest of the body is read and dropped.
        case discardingBody(RequestInFlight, Reply)
        /// The response is being produced (upstream exchange or static file).
        case responding(RequestInFlight)
        case closed
    }

    /// What the access log and the framing decision need about the current request.
    struct RequestInFlight {
        var request: ClientRequest
        var route: Router.Match?
        var keepAlive: Bool
        var status = 0
        var bodyBytesSent = 0
        var headSent = false
        var exchange: UpstreamExchange?
        /// An upgrade (WebSocket) passed to an upstream: the connection ends as a byte tunnel.
        var tunnel: UpgradeTunnel?
        /// The request's end arrived: nothing of it is left unread on the socket.
        var requestComplete = false
        /// The body bytes read (buffered or spilled), for the metrics.
        var bodyBytesReceived = 0
    }

    let loopLocal: LoopLocalState
    let stamp: ResponseStamp
    /// nginx's gzip filter, applied as each response is written.
    let gzip: ResponseCompressor
    private let isTLS: Bool
    /// One HTTP/2 stream (its own channel): one request, no keep-alive or pipelining of its own; the connection's
    /// lifecycle (GOAWAY, idle, http2_max_requests) is HTTP2ConnectionGuard's.
    let isHTTP2Stream: Bool
    /// On a `redirect_to_https` listener: the TLS port every request is redirected to.
    private let httpsRedirectPort: Int?
    var runtime: FrontRuntime
    var state = State.idle
    private var requestsOnConnection = 0
    var context: ChannelHandlerContext?
    /// nginx's client_header/body/keepalive/send timeouts (ProxyHandler+Connection.swift).
    var timeouts: ClientTimeouts
    /// One `LoopTimer` serves every client timeout: it is moved on each request, scheduled rarely.
    var timer: LoopTimer?
    /// send_timeout while the client stops reading (the socket is unwritable).
    var sendTimer: Scheduled<Void>?
    var pipeline = PipelinedRequests()
    /// Queued requests are being handed on: a response finished meanwhile does not start a nested round.
    var deliveringQueued = false

    init(
        loopLocal: LoopLocalState, stamp: ResponseStamp, compression: FrontConfiguration.Compression, isTLS: Bool = false,
        httpsRedirectPort: Int? = nil, isHTTP2Stream: Bool = false, connectionInfo: ClientRequest.ConnectionInfo? = nil
    ) {
        self.cachedConnectionInfo = connectionInfo
        self.loopLocal = loopLocal
        self.stamp = stamp
        self.gzip = ResponseCompressor(configuration: compression, deflaters: loopLocal.deflaters)
        self.isTLS = isTLS
        self.isHTTP2Stream = isHTTP2Stream
        self.httpsRedirectPort = httpsRedirectPort
        self.runtime = loopLocal.runtime
        self.timeouts = ClientTimeouts(limits: loopLocal.runtime.limits, isStream: isHTTP2Stream)
    }

    // MARK: inbound

    /// One request part whose turn it is (ProxyHandler+Connection.swift queues pipelined ones until then).
    func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head): receivedHead(head, context: context)
        case .body(let chunk): receivedBody(chunk, context: context)
        case .end: receivedEnd(context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        runtime = loopLocal.runtime
        requestsOnConnection += 1
        let limits = runtime.limits
        // After an Upgrade or CONNECT NIO's parser stops parsing for good: that connection cannot carry another request.
        let upgrades = head.method == .CONNECT || (head.headers.contains(name: "upgrade") && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" })
        // A stream ends with its response; "keep-alive" only means it is not cut short (reset) after it.
        let keepAlive = isHTTP2Stream || (ConnectionPersistence.requested(by: head) && !upgrades
            && requestsOnConnection < limits.keepaliveRequests && limits.keepaliveTimeout > .zero)
        let request: ClientRequest
        switch RequestHeadCheck.check(head) {
        case .accepted(let target):
            request = ClientRequest(head: head, target: target, connection: connectionInfo(context), startTime: .now())
        case .refused(let status, let reason):
            return refuse(head, status: status, reason: reason, context: context)
        }
        if let port = httpsRedirectPort {
            let location = Self.httpsLocation(for: request, port: port)
            state = .discardingBody(RequestInFlight(request: request, keepAlive: keepAlive), .redirect(.movedPermanently, location))
            return
        }
        if let statusPage = runtime.statusPage, let reply = statusPage.reply(path: request.rawPath, method: head.method, client: request.connection.remoteAddress) {
            state = .discardingBody(RequestInFlight(request: request, keepAlive: keepAlive), reply)
            return
        }
        let route = runtime.router.match(host: request.hostName, path: request.rawPath)
        var inFlight = RequestInFlight(request: request, route: route, keepAlive: keepAlive)

        let declaredLength = head.headers.first(name: "content-length").flatMap { Int64($0) }
        if limits.clientMaxBodySize > 0, let declaredLength, declaredLength > limits.clientMaxBodySize {
            FrontLog.error(
                "client \(request.connection.remoteAddress) intended to send too large body: \(declaredLength) bytes "
                    + "(client_max_body_size is \(limits.clientMaxBodySize)): answered 413")
            inFlight.keepAlive = false
            state = .discardingBody(inFlight, .plain(.payloadTooLarge, "Request body too large\n"))
            // Answer now and close: reading gigabytes only to drop them helps nobody.
            respondAndCloseEarly(context: context)
            return
        }
        guard route != nil else {
            state = .discardingBody(inFlight, .plain(.notFound, "Not Found\n"))
            return
        }
        if head.expectsContinue {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        state = .receiving(inFlight, RequestBodyBuffer(memoryLimit: limits.clientBodyBufferSize, tempDirectory: limits.clientBodyTempPath, allocator: context.channel.allocator))
    }

    /// A head KeelHTTP's rules refused (bad target or Host, faulty framing): one log line, the answer at once, then
    /// the close, without reading a body whose framing cannot be trusted.
    private func refuse(_ head: HTTPRequestHead, status: HTTPResponseStatus, reason: String, context: ChannelHandlerContext) {
        let request = ClientRequest.unchecked(head: head, connection: connectionInfo(context))
        FrontLog.info(
            "client \(request.connection.remoteAddress) sent \"\(request.requestLine)\": \(reason): answered \(status.code)")
        state = .discardingBody(RequestInFlight(request: request, keepAlive: false), .plain(status, "\(reason)\n"))
        respondAndCloseEarly(context: context)
    }

    private func receivedBody(_ chunk: ByteBuffer, context: ChannelHandlerContext) {
        guard case .receiving(var inFlight, let body) = state else { return }
        let limit = runtime.limits.clientMaxBodySize
        if limit > 0, body.byteCount + Int64(chunk.readableBytes) > limit {
            FrontLog.error("client \(inFlight.request.connection.remoteAddress) sent a body over client_max_body_size (\(limit) bytes): answered 413")
            inFlight.keepAlive = false
            state = .discardingBody(inFlight, .plain(.payloadTooLarge, "Request body too large\n"))
            respondAndCloseEarly(context: context)
            return
        }
        do {
            try body.append(chunk)
        } catch {
            FrontLog.error("\(error)")
            inFlight.keepAlive = false
            state = .discardingBody(inFlight, .plain(.internalServerError, "Internal Server Error\n"))
            respondAndCloseEarly(context: context)
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch state {
        case .receiving(var inFlight, let body):
            inFlight.requestComplete = true
            inFlight.bodyBytesReceived = Int(body.byteCount)
            state = .responding(inFlight)
            dispatch(inFlight, body: body, context: context)
        case .discardingBody(var inFlight, let reply):
            inFlight.requestComplete = true
            state = .responding(inFlight)
            send(reply, context: context)
        case .idle, .responding, .closed:
            break
        }
    }

    /// Answers before the body is read (413, spill failure) and closes after: the client may still be sending.
    private func respondAndCloseEarly(context: ChannelHandlerContext) {
        guard case .discardingBody(let inFlight, let reply) = state else { return }
        state = .responding(inFlight)
        send(reply, context: context)
    }

    // MARK: dispatch

    private func dispatch(_ inFlight: RequestInFlight, body: RequestBodyBuffer, context: ChannelHandlerContext) {
        guard let route = inFlight.route else { return send(.plain(.notFound, "Not Found\n"), context: context) }
        switch route.route.action {
        case .fixed(let status, let text, let contentType):
            send(.text(HTTPResponseStatus(statusCode: status), text, contentType: contentType), context: context)
        case .redirect(let location, let status):
            send(.redirect(HTTPResponseStatus(statusCode: status), Self.redirectTarget(location, route: route.route, request: inFlight.request)), context: context)
        case .staticFiles(let files):
            let source = StaticFileResponder.Source(
                root: runtime.staticRoot(files.directory),
                openFiles: runtime.configuration.openFileCache.map { (loopLocal.openFiles, $0) },
                compression: runtime.configuration.compression,
                mimeTypes: runtime.configuration.mimeTypes, allocator: context.channel.allocator)
            let outcome = StaticFileResponder.respond(files, routePrefix: route.route.pathPrefix, request: inFlight.request, source: source)
            switch outcome {
            case .reply(let reply): send(reply, context: context)
            case .fallback(let upstream): passToUWSGI(upstream, inFlight, route: route.route, body: body, context: context)
            }
        case .uwsgi(let upstreamName) where inFlight.request.asksForWebSocket:
            tunnel(to: upstreamName, inFlight, route: route.route, uwsgi: true, context: context)
        case .proxy(let upstreamName) where inFlight.request.asksForWebSocket:
            tunnel(to: upstreamName, inFlight, route: route.route, uwsgi: false, context: context)
        case .uwsgi(let upstreamName):
            passToUWSGI(upstreamName, inFlight, route: route.route, body: body, context: context)
        case .proxy(let upstreamName):
            guard let group = runtime.upstreams[upstreamName] else { return send(.plain(.badGateway, "Bad Gateway\n"), context: context) }
            let head = HTTPUpstreamRequest.head(for: inFlight.request, bodyLength: body.byteCount)
            startExchange(group: group, kind: .http(keepalive: loopLocal.httpConnections), head: head, body: body)
        }
    }

    private func passToUWSGI(
        _ upstreamName: String, _ inFlight: RequestInFlight, route: FrontConfiguration.Route, body: RequestBodyBuffer,
        context: ChannelHandlerContext
    ) {
        guard let group = runtime.upstreams[upstreamName] else { return send(.plain(.badGateway, "Bad Gateway\n"), context: context) }
        let vars = UWSGIParams.vars(for: inFlight.request, serverName: serverName(route, inFlight.request), contentLength: body.byteCount)
        var packet = context.channel.allocator.buffer(capacity: 1024)
        let keepsConnections = group.configuration.keepalive > 0
        do {
            try UWSGIPacket.writeRequestHead(vars: vars, modifier2: keepsConnections ? KeelWire.offer : 0, into: &packet)
        } catch {
            FrontLog.error("client \(inFlight.request.connection.remoteAddress): \(error): answered 431")
            return send(.plain(.requestHeaderFieldsTooLarge, "Request header block too large for the uwsgi protocol\n"), context: context)
        }
        startExchange(
            group: group, kind: .uwsgi(packet: packet, keepalive: keepsConnections ? loopLocal.uwsgiConnections : nil),
            head: inFlight.request.head, body: body)
    }

    private func startExchange(group: UpstreamGroup, kind: UpstreamExchange.Kind, head: HTTPRequestHead, body: RequestBodyBuffer) {
        guard case .responding(var inFlight) = state, let context else { return }
        let exchange = UpstreamExchange(group: group, kind: kind, head: head, body: body, loop: context.eventLoop, sink: self)
        inFlight.exchange = exchange
        state = .responding(inFlight)
        // The body buffer (and its temp file) lives until the exchange is done with it.
        exchange.start()
    }

    func serverName(_ route: FrontConfiguration.Route, _ request: ClientRequest) -> String {
        route.hosts.first(where: { !$0.hasPrefix("*") }) ?? request.hostName ?? request.connection.serverAddress
    }

    static func redirectTarget(_ location: String, route: FrontConfiguration.Route, request: ClientRequest) -> String {
        guard location.hasSuffix("/") else { return location }
        var rest = request.rawPath.dropFirst(route.pathPrefix.count)
        if rest.hasPrefix("/") { rest = rest.dropFirst() }
        let query = request.query.isEmpty ? "" : "?\(request.query)"
        return location + rest + query
    }

    /// The same URL on https: the client's host without its port, the TLS port unless it is 443, path and query.
    static func httpsLocation(for request: ClientRequest, port: Int) -> String {
        let server = request.connection.serverAddress
        let authority = request.hostWithPort ?? (server.contains(":") ? "[\(server)]" : server)
        let host: Substring
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = authority[...close]
        } else {
            host = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        let query = request.query.isEmpty ? "" : "?\(request.query)"
        let path = request.rawPath.hasPrefix("/") ? request.rawPath : "/"
        return "https://\(host)\(port == 443 ? "" : ":\(port)")\(path)\(query)"
    }

    // MARK: connection events

    /// A request NIO's parser refused, answered as nginx would: 431 for a header block over the limit, 400 for
    /// anything else malformed (request-smuggling shapes among them), one log line, then the connection closes.
    /// No answer when one is already under way (it cannot be followed by another).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            // A stream error: the stream is reset (the access log says 499 if the request was cut short), the
            // connection goes on. A client's own RST_STREAM is routine (and a flood of them is the guard's line).
            if isHTTP2Stream {
                if error is NIOHTTP2Errors.StreamClosed || !(error is any NIOHTTP2Error) {
                    // The client's reset, or its connection's end (reset, TLS) reaching every stream.
                    FrontLog.debug("client \(connectionInfo(context).remoteAddress): HTTP/2 stream ended: \(error)")
                } else {
                    FrontLog.info("client \(connectionInfo(context).remoteAddress) sent a malformed HTTP/2 request (\(error)): stream reset")
                }
                context.close(promise: nil)
                return
            }
            context.fireErrorCaught(error)
            return
        }
        let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        FrontLog.info("malformed HTTP request from \(connectionInfo(context).remoteAddress) (\(parserError)): answered \(status.code)")
        let message = status == .requestHeaderFieldsTooLarge ? "Request header block too large\n" : "Malformed HTTP request\n"
        switch state {
        case .receiving(var inFlight, _), .discardingBody(var inFlight, _):
            // The request's own answer, logged as its outcome.
            inFlight.keepAlive = false
            state = .responding(inFlight)
            send(.text(status, message, contentType: "text/plain"), context: context)
        case .idle:
            state = .closed
            stamp.answerAndClose(status, message, context: context)
        case .responding, .closed:
            state = .closed
            context.close(promise: nil)
        }
    }

    /// client_body_timeout passed: the request's own answer, 408, and the connection closes.
    func bodyTimedOut(context: ChannelHandlerContext) {
        switch state {
        case .receiving(var inFlight, _), .discardingBody(var inFlight, _):
            inFlight.keepAlive = false
            state = .discardingBody(inFlight, .plain(.requestTimeout, "Request Timeout\n"))
            respondAndCloseEarly(context: context)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        switch state {
        case .receiving(var inFlight, _), .responding(var inFlight), .discardingBody(var inFlight, _):
            inFlight.exchange?.cancel()
            if let tunnel = inFlight.tunnel {
                tunnel.clientClosed()
                if tunnel.status > 0 {
                    inFlight.status = tunnel.status
                    inFlight.bodyBytesSent = tunnel.bytesToClient
                    inFlight.headSent = true
                }
            }
            gzip.abandon()
            if !inFlight.headSent {
                // nginx's 499: the client closed the connection before the response began.
                inFlight.status = 499
            }
            logAccess(inFlight)
        case .idle, .closed:
            break
        }
        state = .closed
        context.fireChannelInactive()
    }

    /// Computed once per connection (a stream gets its connection's): the addresses do not change between requests.
    private var cachedConnectionInfo: ClientRequest.ConnectionInfo?

    func connectionInfo(_ context: ChannelHandlerContext) -> ClientRequest.ConnectionInfo {
        if let cachedConnectionInfo { return cachedConnectionInfo }
        let info = makeConnectionInfo(context)
        cachedConnectionInfo = info
        return info
    }

    private func makeConnectionInfo(_ context: ChannelHandlerContext) -> ClientRequest.ConnectionInfo {
        Self.connectionInfo(of: context.channel, isTLS: isTLS)
    }

    static func connectionInfo(of channel: any Channel, isTLS: Bool) -> ClientRequest.ConnectionInfo {
        let remote = channel.remoteAddress
        let local = channel.localAddress
        return ClientRequest.ConnectionInfo(
            remoteAddress: remote?.ipAddress ?? "unix:", remotePort: remote?.port ?? 0,
            serverAddress: local?.ipAddress ?? "localhost", serverPort: local?.port ?? 0, isTLS: isTLS)
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}
