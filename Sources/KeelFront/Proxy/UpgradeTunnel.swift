import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An `Upgrade: websocket` request passed to a uwsgi or HTTP upstream, as nginx's proxy/uwsgi modules pass upgrades:
/// a connection of its own to one server, the request sent, the answer's head read within the upstream's
/// `read_timeout`. The answer is relayed raw: a 101 turns both connections into one byte tunnel, with reads paused
/// whichever side cannot take more, until either side closes or `tunnel_idle_timeout` passes without a byte either
/// way; any other answer is relayed to its end, then both close. Lives on the client's event loop.
final class UpgradeTunnel {
    enum Request {
        case uwsgi(ByteBuffer)
        case http(ByteBuffer)
    }

    /// How the tunnel ended, for the client connection's access-log line.
    protocol Owner: AnyObject {
        /// The upstream could not be reached or did not answer: the client gets `status` as a normal response.
        func tunnelFailed(status: HTTPResponseStatus, _ detail: String)
        /// The upstream answered: from now on the client connection carries raw bytes, through `handler`.
        func tunnelStarted(clientHandler: TunnelEnd) throws
    }

    /// Tunnels open in this process, against `max_tunnels`.
    static let open = Atomic<Int>(0)

    private let group: UpstreamGroup
    private let request: Request
    private let loop: any EventLoop
    private let idleTimeout: TimeAmount
    private weak var owner: (any Owner)?
    private var upstream: Channel?
    private var client: TunnelEnd?
    private var upstreamEnd: TunnelEnd?
    private var pendingHead = ByteBuffer()
    private var counted = false
    private var timer: Scheduled<Void>?
    private var lastActivity = NIODeadline.now()
    private var closed = false
    private(set) var status = 0
    /// Bytes sent to the client (the response head included), for the access log.
    private(set) var bytesToClient = 0

    init(group: UpstreamGroup, request: Request, loop: any EventLoop, idleTimeout: TimeAmount, owner: any Owner) {
        self.group = group
        self.request = request
        self.loop = loop
        self.idleTimeout = idleTimeout
        self.owner = owner
    }

    /// Counts the tunnel against `max_tunnels` (false: over it) and connects.
    func start(maxTunnels: Int) -> Bool {
        guard Self.open.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue <= maxTunnels else {
            Self.open.wrappingSubtract(1, ordering: .acquiringAndReleasing)
            return false
        }
        counted = true
        guard let server = group.pickServer() else {
            fail(.badGateway, "upstream \"\(group.name)\" has no servers")
            return true
        }
        let end = TunnelEnd(tunnel: self, side: .upstream)
        upstreamEnd = end
        // The connection is made on this loop, where its initializer runs too.
        let bound = NIOLoopBound(end, eventLoop: loop)
        let connected = UpstreamConnector.channel(
            to: group.server(server), resolved: group.socketAddresses[server], on: loop,
            timeout: group.configuration.connectTimeout
        ) { pipeline in try pipeline.addHandler(bound.value) }
        connected.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard !closed else { return channel.close(promise: nil) }
                group.recordSuccess(server)
                upstream = channel
                let bytes: ByteBuffer
                switch request {
                case .uwsgi(let packet), .http(let packet): bytes = packet
                }
                channel.writeAndFlush(bytes, promise: nil)
                armTimer(group.configuration.readTimeout, waitingForHead: true)
            case .failure(let error):
                _ = group.recordFailure(server)
                fail(.badGateway, "\(error)")
            }
        }
        return true
    }

    private func fail(_ status: HTTPResponseStatus, _ detail: String) {
        guard !closed else { return }
        FrontLog.error("upstream \"\(group.name)\" (WebSocket upgrade): \(detail)")
        self.status = Int(status.code)
        finish()
        // The upstream may still answer (a late 101): nobody is there for it.
        upstream?.close(promise: nil)
        release()
        owner?.tunnelFailed(status: status, detail)
    }

    // MARK: bytes

    fileprivate func received(_ bytes: ByteBuffer, from side: TunnelEnd.Side) {
        guard !closed else { return }
        lastActivity = .now()
        switch side {
        case .client:
            guard let upstream else { return }
            upstream.writeAndFlush(bytes, promise: nil)
            if !upstream.isWritable { client?.pauseReading() }
        case .upstream:
            if client == nil { return receivedHeadBytes(bytes) }
            sendToClient(bytes)
        }
    }

    /// The upstream's answer until its head is whole: its status decides nothing about relaying (all of it goes to
    /// the client raw) but names the access-log status, and the client connection leaves HTTP for raw bytes here.
    private func receivedHeadBytes(_ bytes: ByteBuffer) {
        var bytes = bytes
        pendingHead.writeBuffer(&bytes)
        let view = pendingHead.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            if pendingHead.readableBytes > 64 * 1024 { fail(.badGateway, "a response head over 64 KiB") }
            return
        }
        let line = String(decoding: view[view.startIndex..<(view.firstRange(of: [13, 10])?.lowerBound ?? end.lowerBound)], as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]), (100...999).contains(code) else {
            return fail(.badGateway, "an answer that is not HTTP/1.x: \(line.prefix(80).debugDescription)")
        }
        status = code
        let clientEnd = TunnelEnd(tunnel: self, side: .client)
        do { try owner?.tunnelStarted(clientHandler: clientEnd) } catch {
            return fail(.badGateway, "cannot switch the client connection to a tunnel: \(error)")
        }
        client = clientEnd
        armTimer(idleTimeout, waitingForHead: false)
        let head = pendingHead
        pendingHead = ByteBuffer()
        sendToClient(head)
    }

    private func sendToClient(_ bytes: ByteBuffer) {
        guard let client, let context = client.context else { return }
        bytesToClient += bytes.readableBytes
        context.writeAndFlush(NIOAny(bytes), promise: nil)
        if !context.channel.isWritable { upstreamEnd?.pauseReading() }
    }

    fileprivate func becameWritable(_ side: TunnelEnd.Side) {
        // The side that can take bytes again lets the other one read.
        switch side {
        case .client: upstreamEnd?.resumeReading()
        case .upstream: client?.resumeReading()
        }
    }

    fileprivate func closed(_ side: TunnelEnd.Side) {
        guard !closed else { return }
        if side == .upstream && client == nil {
            return fail(.badGateway, "the upstream closed the connection before answering")
        }
        finish()
        // What was queued for the other side is written before its close.
        switch side {
        case .client:
            upstream?.close(promise: nil)
        case .upstream:
            if let context = client?.context {
                context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { _ in context.close(promise: nil) }
            }
        }
        release()
    }

    /// The client connection is gone (its handler reports it even before the tunnel started).
    func clientClosed() {
        guard !closed else { return }
        finish()
        upstream?.close(promise: nil)
        release()
    }

    /// Drops the connections once their closes are issued (the ends hold the tunnel weakly; this breaks the rest).
    private func release() {
        upstream = nil
        client = nil
        upstreamEnd = nil
    }

    private func finish() {
        closed = true
        timer?.cancel()
        timer = nil
        if counted {
            counted = false
            Self.open.wrappingSubtract(1, ordering: .acquiringAndReleasing)
        }
    }

    // MARK: timeouts

    private func armTimer(_ delay: TimeAmount, waitingForHead: Bool) {
        timer?.cancel()
        timer = loop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, !self.closed else { return }
            if waitingForHead {
                if self.client == nil { return self.fail(.gatewayTimeout, "no answer within read_timeout") }
                return
            }
            let quiet = NIODeadline.now() - self.lastActivity
            if quiet >= self.idleTimeout {
                FrontLog.info(
                    "upstream \"\(self.group.name)\": WebSocket tunnel idle for tunnel_idle_timeout (\(self.idleTimeout.prettySeconds)): closed")
                let clientContext = self.client?.context
                self.closed(.client)
                clientContext?.close(promise: nil)
            } else {
                self.armTimer(self.idleTimeout - quiet, waitingForHead: false)
            }
        }
    }
}

/// One side of a tunnel: raw bytes in, handed to the tunnel; reads paced by the other side's writability.
final class TunnelEnd: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Side {
        case client
        case upstream
    }

    /// Weak: the tunnel holds its ends (and the client's ProxyHandler holds the tunnel) while it lasts.
    private weak var tunnel: UpgradeTunnel?
    let side: Side
    private(set) var context: ChannelHandlerContext?
    private var paused = false
    private var readHeldBack = false

    init(tunnel: UpgradeTunnel, side: Side) {
        self.tunnel = tunnel
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        tunnel?.received(unwrapInboundIn(data), from: side)
    }

    func channelInactive(context: ChannelHandlerContext) {
        tunnel?.closed(side)
        self.context = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { tunnel?.becameWritable(side) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if paused { readHeldBack = true } else { context.read() }
    }

    func pauseReading() { paused = true }

    func resumeReading() {
        paused = false
        if readHeldBack, let context {
            readHeldBack = false
            context.read()
        }
    }
}
