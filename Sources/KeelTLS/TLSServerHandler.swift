import NIOCore
import NIOTLS

#if canImport(Glibc)
import Glibc
#endif

/// Terminates TLS on a server channel: ciphertext in from the socket, plaintext on to the handlers above; plaintext
/// writes from above encrypted and sent on. Fires `TLSUserEvent.handshakeCompleted(negotiatedProtocol:)` so an
/// ALPN-based pipeline choice works as with NIO's own TLS handlers. Knows nothing of HTTP.
public final class TLSServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = IOData
    public typealias OutboundOut = IOData

    private enum State {
        case handshaking
        case active
        /// close_notify sent or received; the connection is on its way down.
        case closing
        case closed
    }

    /// Held, never read: the SSL_CTX callbacks point at the context unretained, so it must outlive this connection.
    private let tlsContext: TLSServerContext
    private let connection: TLSConnection?
    private let handshakeTimeout: TimeAmount
    private let log: @Sendable (String) -> Void
    private let handshakeFailed: @Sendable () -> Void
    private var state = State.handshaking
    private var handshakeDeadline: Scheduled<Void>?
    /// Writes from above before the handshake finished: sent once it has.
    private var writesBeforeHandshake: [(data: IOData, promise: EventLoopPromise<Void>?)] = []
    private var flushBeforeHandshake = false
    private var outputNeedsFlush = false
    /// Small writes since the last flush, encrypted together at the flush.
    private var pending = PendingPlaintext()
    /// An idle connection gives OpenSSL's record buffers back after this long without a read or a flush.
    static let releaseBuffersAfter = TimeAmount.seconds(5)
    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    /// How many times the buffers were given back (for tests).
    private(set) var buffersReleased = 0

    /// `log` gets one line per failed handshake (nginx logs these at info level); `handshakeFailed` is called once per
    /// handshake that failed or timed out (keel's metrics count them).
    /// `applicationProtocols` narrows the context's ALPN list for this connection (nil offers the context's).
    public init(
        context: TLSServerContext, handshakeTimeout: TimeAmount, applicationProtocols: [String]? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }, handshakeFailed: @escaping @Sendable () -> Void = {}
    ) {
        self.tlsContext = context
        self.connection = context.makeConnection(applicationProtocols: applicationProtocols)
        self.handshakeTimeout = handshakeTimeout
        self.log = log
        self.handshakeFailed = handshakeFailed
    }

    // MARK: lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startHandshakeClock(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        startHandshakeClock(context)
        context.fireChannelActive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        idleCheck?.cancel()
        failWritesBeforeHandshake(ChannelError.ioOnClosedChannel)
        pending.fail(ChannelError.ioOnClosedChannel)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        idleCheck?.cancel()
        let wasActive: Bool
        if case .active = state { wasActive = true } else { wasActive = false }
        state = .closed
        failWritesBeforeHandshake(ChannelError.ioOnClosedChannel)
        pending.fail(ChannelError.ioOnClosedChannel)
        // A TCP close without close_notify: HTTP framing makes it harmless, but the layers above may care.
        if wasActive { context.fireErrorCaught(TLSError.uncleanShutdown) }
        context.fireChannelInactive()
    }

    private func startHandshakeClock(_ context: ChannelHandlerContext) {
        guard handshakeDeadline == nil, case .handshaking = state else { return }
        guard connection != nil else {
            log("TLS: cannot create a connection (OpenSSL out of memory?): closing")
            state = .closed
            context.close(promise: nil)
            return
        }
        handshakeDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) {
            guard case .handshaking = self.state else { return }
            self.log("TLS handshake with \(Self.peer(context)) timed out: closing")
            self.handshakeFailed()
            self.state = .closed
            self.failWritesBeforeHandshake(TLSError.handshakeTimeout)
            context.fireErrorCaught(TLSError.handshakeTimeout)
            context.close(promise: nil)
        }
    }

    // MARK: inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection else { return }
        switch state {
        case .handshaking, .active: connection.receive(unwrapInboundIn(data))
        case .closing, .closed: return  // nothing after close_notify matters
        }
        if case .handshaking = state { advanceHandshake(context, connection) }
        if case .active = state { readPlaintext(context, connection) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context)
        noteActivity(context)
        context.fireChannelReadComplete()
    }

    /// Keeps the record buffers while the connection is busy; frees them once it has been quiet for
    /// `releaseBuffersAfter` (one scheduled check per quiet period, not a task per request).
    private func noteActivity(_ context: ChannelHandlerContext) {
        lastActivity = context.eventLoop.now
        guard idleCheck == nil, case .active = state else { return }
        scheduleIdleCheck(context, in: Self.releaseBuffersAfter)
    }

    private func scheduleIdleCheck(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.idleCheck = nil
            guard case .active = self.state, let connection = self.connection else { return }
            let quiet = context.eventLoop.now - self.lastActivity
            if quiet < Self.releaseBuffersAfter {
                self.scheduleIdleCheck(context, in: Self.releaseBuffersAfter - quiet)
            } else if self.pending.isEmpty, connection.releaseBuffers() {
                self.buffersReleased += 1
            }
        }
    }

    private func advanceHandshake(_ context: ChannelHandlerContext, _ connection: TLSConnection) {
        switch connection.handshake() {
        case .needsMoreData:
            writeOutput(context, promise: nil)
        case .complete:
            state = .active
            handshakeDeadline?.cancel()
            writeOutput(context, promise: nil)  // the last flight and, for TLS 1.3, the session tickets
            flushIfNeeded(context)
            context.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: connection.negotiatedProtocol))
            let queued = writesBeforeHandshake
            writesBeforeHandshake = []
            for write in queued { self.write(context: context, data: wrapOutboundOut(write.data), promise: write.promise) }
            if flushBeforeHandshake { flush(context: context) }
        case .failed(let reason):
            log("TLS handshake with \(Self.peer(context)) failed: \(reason)")
            handshakeFailed()
            fail(context, TLSError.handshakeFailed(reason))
        }
    }

    private func readPlaintext(_ context: ChannelHandlerContext, _ connection: TLSConnection) {
        var plaintext = context.channel.allocator.buffer(capacity: 16 * 1024)
        let result = connection.readPlaintext(into: &plaintext)
        if plaintext.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(plaintext)) }
        // Reading may have produced records of our own (a TLS 1.3 KeyUpdate answer).
        if connection.hasOutput { writeOutput(context, promise: nil) }
        switch result {
        case .needsMoreData:
            break
        case .closed:
            // The peer's close_notify: answer with ours and close, as the TLS RFCs ask.
            guard case .active = state else { return }
            state = .closing
            connection.shutdown()
            writeOutput(context, promise: nil)
            flushIfNeeded(context)
            context.close(promise: nil)
        case .failed(let reason):
            log("TLS error from \(Self.peer(context)): \(reason)")
            fail(context, TLSError.protocolError(reason))
        }
    }

    /// Sends any alert OpenSSL queued, tells the pipeline and closes.
    private func fail(_ context: ChannelHandlerContext, _ error: TLSError) {
        state = .closed
        handshakeDeadline?.cancel()
        writeOutput(context, promise: nil)
        flushIfNeeded(context)
        failWritesBeforeHandshake(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    // MARK: outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state {
        case .handshaking:
            writesBeforeHandshake.append((unwrapOutboundIn(data), promise))
        case .active:
            guard let connection else { return }
            let failure: String?
            switch unwrapOutboundIn(data) {
            case .byteBuffer(let buffer):
                if buffer.readableBytes == 0 && promise == nil { return }
                if pending.fits(buffer.readableBytes) {
                    pending.append(buffer, promise: promise, allocator: context.channel.allocator)
                    return
                }
                guard encryptPending(context, connection) else { return }
                failure = buffer.withUnsafeReadableBytes { connection.write($0) }
            case .fileRegion(let region):
                guard encryptPending(context, connection) else { return }
                failure = encryptFile(region, connection)
            }
            if let failure {
                promise?.fail(TLSError.protocolError(failure))
                writeFailed(context, failure)
                return
            }
            writeOutput(context, promise: promise)
        case .closing, .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    public func flush(context: ChannelHandlerContext) {
        switch state {
        case .handshaking: flushBeforeHandshake = true
        case .active:
            if let connection, !encryptPending(context, connection) { return }
            outputNeedsFlush = false
            context.flush()
            noteActivity(context)
        default:
            outputNeedsFlush = false
            context.flush()
        }
    }

    /// Encrypts the gathered small writes as one record and queues the ciphertext; false if that failed (the
    /// connection is being closed then).
    private func encryptPending(_ context: ChannelHandlerContext, _ connection: TLSConnection) -> Bool {
        guard let (bytes, promises) = pending.take() else { return true }
        if bytes.readableBytes > 0, let failure = bytes.withUnsafeReadableBytes({ connection.write($0) }) {
            for promise in promises { promise.fail(TLSError.protocolError(failure)) }
            writeFailed(context, failure)
            return false
        }
        var combined: EventLoopPromise<Void>?
        if promises.count == 1 {
            combined = promises[0]
        } else if promises.count > 1 {
            let all = context.eventLoop.makePromise(of: Void.self)
            for promise in promises { all.futureResult.cascade(to: promise) }
            combined = all
        }
        writeOutput(context, promise: combined)
        return true
    }

    private func writeFailed(_ context: ChannelHandlerContext, _ failure: String) {
        log("TLS write to \(Self.peer(context)) failed: \(failure)")
        fail(context, TLSError.protocolError(failure))
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, case .active = state, let connection else {
            if mode == .all, case .handshaking = state { state = .closed }
            context.close(mode: mode, promise: promise)
            return
        }
        // What was written before the close goes first, then our close_notify; a peer that stopped reading gets a
        // second to take them.
        guard encryptPending(context, connection) else {
            context.close(mode: mode, promise: promise)
            return
        }
        state = .closing
        connection.shutdown()
        guard let output = connection.takeOutput(allocator: context.channel.allocator), context.channel.isWritable else {
            context.close(mode: mode, promise: promise)
            return
        }
        let sent = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(output)), promise: sent)
        let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { sent.fail(TLSError.uncleanShutdown) }
        sent.futureResult.assumeIsolated().whenComplete { _ in
            deadline.cancel()
            context.close(mode: mode, promise: promise)
        }
    }

    /// File regions cannot go through sendfile under TLS: the bytes are read (the caller sends bounded slices) and
    /// encrypted like any other buffer.
    private func encryptFile(_ region: FileRegion, _ connection: TLSConnection) -> String? {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        do {
            return try region.fileHandle.withUnsafeFileDescriptor { fd -> String? in
                var offset = region.readerIndex
                while offset < region.endIndex {
                    let wanted = min(chunk.count, region.endIndex - offset)
                    let count = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(offset)) }
                    if count < 0 && errno == EINTR { continue }
                    if count <= 0 { return count == 0 ? "the file shrank while being sent" : "reading the file failed: errno \(errno)" }
                    if let failure = chunk.withUnsafeBytes({ connection.write(UnsafeRawBufferPointer(rebasing: $0[..<count])) }) {
                        return failure
                    }
                    offset += count
                }
                return nil
            }
        } catch {
            return "\(error)"
        }
    }

    /// Moves the ciphertext OpenSSL produced into the channel (flushed later, once per read burst or flush).
    private func writeOutput(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard let connection, let output = connection.takeOutput(allocator: context.channel.allocator) else {
            promise?.succeed()
            return
        }
        outputNeedsFlush = true
        context.write(wrapOutboundOut(.byteBuffer(output)), promise: promise)
    }

    private func flushIfNeeded(_ context: ChannelHandlerContext) {
        guard outputNeedsFlush else { return }
        outputNeedsFlush = false
        context.flush()
    }

    private func failWritesBeforeHandshake(_ error: any Error) {
        let queued = writesBeforeHandshake
        writesBeforeHandshake = []
        for write in queued { write.promise?.fail(error) }
    }

    private static func peer(_ context: ChannelHandlerContext) -> String {
        guard let address = context.channel.remoteAddress, let ip = address.ipAddress, let port = address.port else { return "a client" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

@available(*, unavailable)
extension TLSServerHandler: Sendable {}
