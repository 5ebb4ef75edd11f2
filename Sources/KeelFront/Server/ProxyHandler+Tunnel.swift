import KeelHTTP
import NIOCore
import NIOHTTP1
import UWSGI

/// ProxyHandler's part in a WebSocket upgrade passed to an upstream (`UpgradeTunnel`): the request goes out on a
/// connection of its own; once the upstream answers, the client connection leaves HTTP (NIO's codec is removed and a
/// `TunnelEnd` takes its bytes) and this handler only waits for the close to write the access-log line.
extension ProxyHandler: UpgradeTunnel.Owner {
    func tunnel(
        to upstreamName: String, _ inFlight: RequestInFlight, route: FrontConfiguration.Route, uwsgi: Bool,
        context: ChannelHandlerContext
    ) {
        guard let group = runtime.upstreams[upstreamName] else { return send(.plain(.badGateway, "Bad Gateway\n"), context: context) }
        let request: UpgradeTunnel.Request
        if uwsgi {
            let vars = UWSGIParams.vars(for: inFlight.request, serverName: serverName(route, inFlight.request), contentLength: 0)
            var packet = context.channel.allocator.buffer(capacity: 1024)
            do { try UWSGIPacket.writeRequestHead(vars: vars, into: &packet) } catch {
                FrontLog.error("client \(inFlight.request.connection.remoteAddress): \(error): answered 431")
                return send(.plain(.requestHeaderFieldsTooLarge, "Request header block too large for the uwsgi protocol\n"), context: context)
            }
            request = .uwsgi(packet)
        } else {
            var head = HTTPUpstreamRequest.head(for: inFlight.request, bodyLength: 0)
            // The hop-by-hop headers an upgrade is made of go on to the backend, as nginx's proxy_set_header does.
            head.headers.replaceOrAdd(name: "Upgrade", value: inFlight.request.head.headers.first(name: "upgrade") ?? "websocket")
            head.headers.replaceOrAdd(name: "Connection", value: "upgrade")
            var bytes = context.channel.allocator.buffer(capacity: 1024)
            bytes.writeString("\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n")
            for (name, value) in head.headers { bytes.writeString("\(name): \(value)\r\n") }
            bytes.writeStaticString("\r\n")
            request = .http(bytes)
        }
        let limits = runtime.limits
        let tunnel = UpgradeTunnel(
            group: group, request: request, loop: context.eventLoop, idleTimeout: limits.tunnelIdleTimeout, owner: self)
        guard case .responding(var current) = state else { return }
        current.tunnel = tunnel
        current.keepAlive = false
        state = .responding(current)
        guard tunnel.start(maxTunnels: limits.maxTunnels) else {
            FrontLog.error(
                "client \(inFlight.request.connection.remoteAddress): \(limits.maxTunnels) WebSocket tunnels are open "
                    + "(limits.max_tunnels): answered 503")
            current.tunnel = nil
            state = .responding(current)
            return send(.plain(.serviceUnavailable, "Too many WebSocket connections\n"), context: context)
        }
    }

    func tunnelFailed(status: HTTPResponseStatus, _ detail: String) {
        guard case .responding(var inFlight) = state, let context else { return }
        inFlight.tunnel = nil
        state = .responding(inFlight)
        send(.plain(status, status == .gatewayTimeout ? "Gateway Timeout\n" : "Bad Gateway\n"), context: context)
    }

    func tunnelStarted(clientHandler: TunnelEnd) throws {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        stopTimers()
        let sync = context.pipeline.syncOperations
        try sync.addHandler(clientHandler, position: .before(self))
        // The client sends nothing before it has the upstream's answer (RFC 6455 §4.1), so removing the decoder
        // drops nothing; from here its bytes reach the tunnel raw.
        sync.removeHandler(try sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
        sync.removeHandler(try sync.handler(type: HTTPResponseEncoder.self), promise: nil)
    }
}

extension ClientRequest {
    /// `Upgrade: websocket` with `Connection: upgrade` on a GET: passed to an upstream as a tunnel.
    var asksForWebSocket: Bool {
        guard head.method == .GET else { return false }
        let upgrade = head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
        return upgrade && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
    }
}
