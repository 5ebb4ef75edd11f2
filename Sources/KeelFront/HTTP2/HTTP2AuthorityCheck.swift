import NIOCore
import NIOHPACK
import NIOHTTP2

/// First in each stream: a request whose Host names another server than its `:authority` is malformed (RFC 9113
/// §8.3.1) and reset with PROTOCOL_ERROR. NIO's HTTP/1 codec keeps Host and drops `:authority`, so without this
/// the two could route differently in keel and a proxy before it. Stateless: one instance serves every stream.
final class HTTP2AuthorityCheck: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    static let shared = HTTP2AuthorityCheck()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .headers(let frame) = unwrapInboundIn(data), let host = frame.headers.first(name: "host"),
            let authority = frame.headers.first(name: ":authority"), !Self.sameServer(host, authority)
        {
            let client = context.channel.parent?.remoteAddress?.ipAddress ?? "?"
            FrontLog.info("client \(client) sent an HTTP/2 request whose Host (\(host)) differs from :authority (\(authority)): stream reset")
            context.writeAndFlush(wrapOutboundOut(.rstStream(.protocolError)), promise: nil)
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    /// Names compare without case; an explicit default port names the same server.
    static func sameServer(_ host: String, _ authority: String) -> Bool {
        func normal(_ value: String) -> Substring {
            let lower = Substring(value.lowercased())
            for port in [":443", ":80"] where lower.hasSuffix(port) { return lower.dropLast(port.count) }
            return lower
        }
        return host == authority || normal(host) == normal(authority)
    }
}
