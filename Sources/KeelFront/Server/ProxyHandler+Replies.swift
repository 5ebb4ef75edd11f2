import NIOCore
import NIOHTTP2
import NIOHTTP1
import KeelHTTP

/// ProxyHandler's writing half: a response's head, body and end on their way to the client, whether keel made the
/// reply or an upstream sends it, through the response filters (ResponseStamp, the gzip filter), with the access
/// log line and the keep-alive or lingering close at the end.
extension ProxyHandler: UpstreamExchange.Sink {
    // MARK: UpstreamExchange.Sink

    var clientIsWritable: Bool { context?.channel.isWritable ?? false }

    func exchangeDidReceiveHead(_ upstreamHead: HTTPResponseHead) {
        guard case .responding(var inFlight) = state, let context else { return }
        var head = HTTPResponseHead(version: inFlight.request.head.version, status: upstreamHead.status)
        head.headers = HTTPUpstreamRequest.responseHeaders(from: upstreamHead.headers)
        // Before the framing decision: compressing drops Content-Length.
        gzip.begin(&head, request: inFlight.request.head, allocator: context.channel.allocator)
        inFlight.keepAlive = ConnectionPersistence.keepsAlive(
            requested: inFlight.keepAlive, requestVersion: inFlight.request.head.version,
            isHeadRequest: inFlight.request.head.method == .HEAD,
            responseHasLength: head.headers.contains(name: "content-length"))
        Self.setConnectionHeader(&head, keepAlive: inFlight.keepAlive)
        stamp.apply(to: &head.headers)
        inFlight.status = Int(head.status.code)
        inFlight.headSent = true
        state = .responding(inFlight)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func exchangeDidReceiveBody(_ body: ByteBuffer) {
        guard case .responding(var inFlight) = state, let context else { return }
        inFlight.bodyBytesSent += body.readableBytes
        state = .responding(inFlight)
        // Flushed at the end of the upstream read (or with the response's end): one write per read, not per part.
        writeBody(body, context: context)
    }

    func exchangeDidCompleteRead() {
        guard let context else { return }
        flushResponse(context: context)
    }

    func exchangeDidFinish() {
        guard case .responding(let inFlight) = state, let context else { return }
        finishResponse(inFlight, context: context)
    }

    func exchangeDidFail(_ failure: UpstreamExchange.Failure) {
        guard case .responding(var inFlight) = state, let context else { return }
        if inFlight.headSent {
            // Too late for an error status: the client sees the connection end short of the promised length.
            FrontLog.error("\(failure) while sending the response to \(inFlight.request.connection.remoteAddress); connection closed")
            gzip.abandon()
            inFlight.keepAlive = false
            state = .responding(inFlight)
            logAccess(inFlight)
            state = .closed
            context.close(promise: nil)
            return
        }
        FrontLog.error("\(failure), client: \(inFlight.request.connection.remoteAddress), request: \"\(inFlight.request.requestLine)\"")
        inFlight.exchange = nil
        state = .responding(inFlight)
        let status = failure.status
        send(.plain(status, "\(status.code) \(status.reasonPhrase)\n"), context: context, upstreamTimed: true)
    }

    // MARK: writing replies

    func send(_ reply: Reply, context: ChannelHandlerContext, upstreamTimed: Bool = false) {
        guard case .responding(var inFlight) = state else { return }
        var head = HTTPResponseHead(version: inFlight.request.head.version, status: reply.status, headers: reply.headers)
        if reply.closesConnection { inFlight.keepAlive = false }
        gzip.begin(&head, request: inFlight.request.head, allocator: context.channel.allocator)
        if gzip.isCompressing, inFlight.request.head.version == .http1_0 { inFlight.keepAlive = false }  // no length left
        Self.setConnectionHeader(&head, keepAlive: inFlight.keepAlive)
        stamp.apply(to: &head.headers)
        inFlight.status = Int(reply.status.code)
        inFlight.headSent = true
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        let isHead = inFlight.request.head.method == .HEAD
        switch reply.body {
        case .none:
            finishResponse(inFlight, context: context)
        case .buffer(let buffer):
            if !isHead {
                inFlight.bodyBytesSent += buffer.readableBytes
                state = .responding(inFlight)
                guard writeBody(buffer, context: context) else { return }
            }
            finishResponse(inFlight, context: context)
        case .file(let file, let range):
            if isHead {
                finishResponse(inFlight, context: context)
                return
            }
            state = .responding(inFlight)
            writeFile(file, range, from: range.lowerBound, context: context)
        }
    }

    /// A file goes out in slices, each written when the previous is sent, so writability (and with it send_timeout)
    /// follows real progress: NIO counts a whole FileRegion as pending at once.
    private func writeFile(_ file: StaticFile, _ range: Range<Int>, from offset: Int, context: ChannelHandlerContext) {
        guard case .responding(var inFlight) = state else { return }
        let end = min(range.upperBound, offset + Self.fileSliceSize)
        let slice = FileRegion(fileHandle: file.handle, readerIndex: offset, endIndex: end)
        inFlight.bodyBytesSent += slice.readableBytes
        state = .responding(inFlight)
        let written = context.eventLoop.makePromise(of: Void.self)
        if gzip.isCompressing {
            // Read and compressed here (as nginx's gzip reads files), sync-flushed like any flushed part.
            do {
                let compressed = try gzip.compressFileAndFlush(slice, allocator: context.channel.allocator)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(compressed))), promise: written)
            } catch {
                written.fail(error)
                gzipFailed(error, context: context)
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.body(.fileRegion(slice))), promise: written)
        }
        // The closure holds the file (and with it the descriptor) until the slice is sent.
        written.futureResult.assumeIsolated().whenComplete { result in
            guard case .success = result, end < range.upperBound else {
                if case .success = result, case .responding(let inFlight) = self.state {
                    self.finishResponse(inFlight, context: context)
                }
                return
            }
            self.writeFile(file, range, from: end, context: context)
        }
    }

    static let fileSliceSize = 1 << 20

    func finishResponse(_ inFlight: RequestInFlight, context: ChannelHandlerContext) {
        do {
            if let tail = try gzip.finish() { context.write(wrapOutboundOut(.body(.byteBuffer(tail))), promise: nil) }
        } catch {
            return gzipFailed(error, context: context)
        }
        logAccess(inFlight)
        let keepAlive = responseEnding() && inFlight.keepAlive
        state = keepAlive ? .idle : .closed
        // A kept connection needs no word of the write: no promise (and no future) per request.
        guard !keepAlive else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            deliverQueued(context: context)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let requestUnfinished = !inFlight.requestComplete
        let isStream = isHTTP2Stream
        written.futureResult.assumeIsolated().whenComplete { _ in
            // A stream whose request is still arriving is told to stop sending, without error (RFC 9113 §8.1).
            if isStream && requestUnfinished { return Self.endStreamEarly(context: context) }
            guard requestUnfinished && !isStream else { return context.close(promise: nil) }
            // nginx's lingering close: stop writing but keep reading (and dropping) the unread body a little while,
            // so the kernel does not answer it with a reset that destroys the response before the client reads it.
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingeringTime) { context.close(promise: nil) }
        }
    }

    static let lingeringTime = TimeAmount.seconds(2)

    /// The answer is out before the request ended: RST_STREAM(NO_ERROR), not the CANCEL a bare close would send. The
    /// frame is written below the HTTP/1 codec, which only takes response parts.
    static func endStreamEarly(context: ChannelHandlerContext) {
        if let codec = try? context.pipeline.syncOperations.context(handlerType: HTTP2FramePayloadToHTTP1ServerCodec.self) {
            codec.writeAndFlush(NIOAny(HTTP2Frame.FramePayload.rstStream(.noError)), promise: nil)
        }
        context.close(promise: nil)
    }

    /// A body part, compressed when the response is; false when compressing failed (the connection is closing).
    @discardableResult
    private func writeBody(_ body: ByteBuffer, context: ChannelHandlerContext) -> Bool {
        guard gzip.isCompressing else {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            return true
        }
        do {
            // zlib often holds small inputs until a flush: an empty part would end a chunked body early.
            let compressed = try gzip.compress(body)
            if compressed.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(compressed))), promise: nil) }
            return true
        } catch {
            gzipFailed(error, context: context)
            return false
        }
    }

    /// Sends what was written, compressed output so far included (streamed responses stay streamed).
    private func flushResponse(context: ChannelHandlerContext) {
        do {
            if let pending = try gzip.flush() { context.write(wrapOutboundOut(.body(.byteBuffer(pending))), promise: nil) }
        } catch {
            return gzipFailed(error, context: context)
        }
        context.flush()
    }

    /// zlib failing mid-response leaves no way to finish it correctly: the connection is closed.
    private func gzipFailed(_ error: any Error, context: ChannelHandlerContext) {
        FrontLog.error("gzip failed mid-response (\(error)); connection closed")
        gzip.abandon()
        if case .responding(var inFlight) = state {
            inFlight.keepAlive = false
            inFlight.exchange?.cancel()
            logAccess(inFlight)
        }
        state = .closed
        context.close(promise: nil)
    }

    /// The end of a request, whatever its outcome: its metrics, then its access-log line.
    func logAccess(_ inFlight: RequestInFlight) {
        loopLocal.metrics.countRequest()
        // Without metrics and access log a request's end costs no clock read.
        guard runtime.metrics != nil || runtime.accessLog != nil else { return }
        let request = inFlight.request
        let now = NIODeadline.now()
        let upstreamTime = inFlight.exchange.map { ($0.finishTime ?? now) - $0.startTime }
        if let metrics = runtime.metrics {
            var upstream: (UpstreamMetrics, Int64)?
            if let group = inFlight.exchange?.group.metrics, let upstreamTime { upstream = (group, upstreamTime.nanoseconds) }
            loopLocal.metrics.requestEnded(
                metrics, route: inFlight.route?.index, method: request.head.method, status: inFlight.status,
                durationNanoseconds: (now - request.startTime).nanoseconds, upstream: upstream,
                bodyBytesIn: inFlight.bodyBytesReceived, bodyBytesOut: inFlight.bodyBytesSent)
        }
        guard let accessLog = runtime.accessLog else { return }
        accessLog.log(
            AccessLog.Entry(
                remoteAddress: request.connection.remoteAddress, requestLine: request.requestLine, status: inFlight.status,
                bodyBytesSent: inFlight.bodyBytesSent, referer: request.head.headers.first(name: "referer"),
                userAgent: request.head.headers.first(name: "user-agent"), requestTime: now - request.startTime,
                upstreamTime: upstreamTime),
            into: loopLocal.accessLog)
    }

    static func setConnectionHeader(_ head: inout HTTPResponseHead, keepAlive: Bool) {
        ConnectionPersistence.setConnectionHeader(&head.headers, version: head.version, keepAlive: keepAlive)
    }
}
