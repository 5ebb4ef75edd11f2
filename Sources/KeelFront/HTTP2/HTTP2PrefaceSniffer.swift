import NIOCore

/// On an `h2c = true` listener: reads until the first bytes either are HTTP/2's connection preface (prior knowledge)
/// or cannot be, then puts the matching pipeline behind itself, hands it what was read and steps out. A client that
/// sends nothing is closed after client_header_timeout, as on an HTTP/1 listener.
final class HTTP2PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Verdict: Equatable {
        case http2
        case http1
        case needMore
    }

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// HTTP/2 when the bytes so far are the whole preface, HTTP/1 as soon as one differs from it.
    static func verdict(_ bytes: ByteBuffer) -> Verdict {
        let count = min(bytes.readableBytes, preface.count)
        let matches = bytes.withUnsafeReadableBytes { raw in (0..<count).allSatisfy { raw[$0] == preface[$0] } }
        guard matches else { return .http1 }
        return count == preface.count ? .http2 : .needMore
    }

    private let configure: (Verdict, any Channel) throws -> Void
    private let timeout: TimeAmount
    private var buffered: ByteBuffer?
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount, configure: @escaping (Verdict, any Channel) throws -> Void) {
        self.timeout = timeout
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startClock(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startClock(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    private func startClock(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { context.close(promise: nil) }
    }

    /// TERM before the first request was read: nothing is in flight, the connection closes now (as an idle one).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var earlier = buffered {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        let verdict = Self.verdict(bytes)
        guard verdict != .needMore else {
            buffered = bytes
            return
        }
        buffered = nil
        deadline?.cancel()
        do {
            try configure(verdict, context.channel)
        } catch {
            FrontLog.error("cannot set up the connection from \(context.channel.remoteAddress?.ipAddress ?? "?"): \(error)")
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
