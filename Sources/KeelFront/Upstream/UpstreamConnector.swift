import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Opens connections to backend servers (unix or TCP) on the client's event loop, with the connect timeout and
/// reads paused by the exchange whenever the client cannot take more.
enum UpstreamConnector {
    struct ConnectError: Error, CustomStringConvertible {
        var address: FrontConfiguration.ServerAddress
        var underlying: any Error
        var description: String { "connect() to \(address) failed (\(underlying))" }
    }

    enum Codec: Sendable {
        case uwsgi
        case http
    }

    static func connect(
        to address: FrontConfiguration.ServerAddress, resolved: SocketAddress?, codec: Codec, on loop: any EventLoop,
        timeout: TimeAmount
    ) -> EventLoopFuture<(Channel, UpstreamResponseRelay)> {
        channel(to: address, resolved: resolved, on: loop, timeout: timeout) { sync in
            switch codec {
            case .uwsgi:
                try sync.addHandler(UWSGIClientCodec())
            case .http:
                try sync.addHTTPClientHandlers(leftOverBytesStrategy: .dropBytes)
            }
            let relay = UpstreamResponseRelay()
            relay.serverKey = address.description
            try sync.addHandler(relay)
        }.flatMapThrowing { channel in
            (channel, try channel.pipeline.syncOperations.handler(type: UpstreamResponseRelay.self))
        }
    }

    /// A connection to `address` with `handlers` in its pipeline (requests' codecs, or a WebSocket tunnel's raw end).
    static func channel(
        to address: FrontConfiguration.ServerAddress, resolved: SocketAddress?, on loop: any EventLoop, timeout: TimeAmount,
        handlers: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> EventLoopFuture<Channel> {
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try handlers(channel.pipeline.syncOperations) }
            }
        if case .tcp = address {
            // Kept connections to other hosts: keep-alive probes find a peer that vanished (TCP_NODELAY is NIO's default).
            bootstrap = bootstrap.channelOption(.socketOption(.so_keepalive), value: 1)
        }
        let connected: EventLoopFuture<Channel>
        switch (address, resolved) {
        case (.unix, .some(let resolved)):
            // A unix connect completes (or fails) at once: done here, without NIO's connect promise and timeout task.
            switch connectUnixNow(resolved) {
            case .success(let fd): connected = bootstrap.withConnectedSocket(fd)
            case .failure(let error): connected = loop.makeFailedFuture(error)
            }
        case (_, .some(let resolved)):
            connected = bootstrap.connect(to: resolved)
        case (.unix(let path), nil):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        case (.tcp(let host, let port), nil):
            connected = bootstrap.connect(host: host, port: port)
        }
        return connected.flatMapErrorThrowing { error in
            throw ConnectError(address: address, underlying: error)
        }
    }
}

/// A non-blocking unix-socket connect, which the kernel completes or refuses immediately (EAGAIN: the backlog is full,
/// the same failure nginx reports).
private func connectUnixNow(_ address: SocketAddress) -> Result<CInt, IOError> {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return .failure(IOError(errnoCode: errno, reason: "socket")) }
    let result = address.withSockAddr { pointer, size in Glibc.connect(fd, pointer, socklen_t(size)) }
    guard result == 0 else {
        let code = errno
        close(fd)
        return .failure(IOError(errnoCode: code, reason: "connect"))
    }
    return .success(fd)
}
