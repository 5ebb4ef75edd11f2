#if canImport(Glibc)
import Glibc
#endif
import KeelApp
import NIOCore
import NIOHTTP1

/// `--http-socket`: HTTP/1.1 with keep-alive and pipelining (NIO's pipeline handler keeps responses
/// in request order). Each request becomes the same CGI vars nginx's uwsgi_params would send.
final class HTTPConnectionHandler: ChannelInboundHandler, ResponseSink, DrainableConnection {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        case discarding  // a refused body (413) is read and dropped until its end
        case running(keepAlive: Bool)
    }

    private let configuration: WorkerConfiguration
    private let scheduler: RequestScheduler
    private let serverAddress: (name: String, port: String)
    private var state: State = .idle
    /// The connection holds one of the worker's thread slots from accept (or next request) to response end.
    private var holdsSlot = true
    private var draining = false
    private var context: ChannelHandlerContext?
    private var responseVersion = HTTPVersion.http1_1
    private var isHeadRequest = false
    private var keepAlive = true
    private var servedRequests = 0
    private(set) var pendingBytes = 0

    init(configuration: WorkerConfiguration, scheduler: RequestScheduler, serverAddress: (name: String, port: String)) {
        self.configuration = configuration
        self.scheduler = scheduler
        self.serverAddress = serverAddress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduler.connectionOpened(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A request still in the app keeps its slot until it ends (endResponse gives it back).
        if case .running = state {} else { giveSlot() }
        self.context = nil
        scheduler.connectionClosed(self)
        context.fireChannelInactive()
    }

    private func giveSlot() {
        if holdsSlot {
            holdsSlot = false
            scheduler.giveSlot()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            if !holdsSlot {
                holdsSlot = true
                scheduler.takeSlot()
            }
            let declared = head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0
            if declared > configuration.effectiveBodyLimit {
                state = .discarding
                respondWithError(head: head, status: .payloadTooLarge, close: true)
                return
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
        case (.body(var chunk), .receiving(let head, var body)):
            state = .idle  // drop the reference so the append below does not copy
            if body.readableBytes + chunk.readableBytes > configuration.effectiveBodyLimit {
                state = .discarding
                respondWithError(head: head, status: .payloadTooLarge, close: true)
                return
            }
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case (.end, .receiving(let head, let body)):
            dispatch(head: head, body: body, context: context)
        case (.end, .discarding):
            state = .idle
        default:
            break
        }
    }

    private func dispatch(head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        keepAlive = head.isKeepAlive && !draining
        state = .running(keepAlive: keepAlive)
        responseVersion = head.version
        isHeadRequest = head.method == .HEAD
        let request = Request(
            vars: HTTPRequestVars.make(
                head: head, bodyLength: body.readableBytes, remote: context.remoteAddress, server: serverAddress),
            body: body)
        AppRunner.run(request, handler: configuration.handler, sink: self, scheduler: scheduler) {}
    }

    private func respondWithError(head: HTTPRequestHead, status: HTTPResponseStatus, close: Bool) {
        let message = status == .payloadTooLarge
            ? "Request body is over the limit of \(configuration.effectiveBodyLimit) bytes (--limit-post)\n"
            : "\(status.reasonPhrase)\n"
        if status == .payloadTooLarge { WorkerLog.error("\(head.method) \(head.uri): \(message.dropLast()): 413") }
        writeErrorAndClose(to: head, status: Int(status.code), message)
    }

    /// A short text response from the worker itself (413, 408), after which the connection closes.
    private func writeErrorAndClose(to head: HTTPRequestHead, status: Int, _ message: String) {
        keepAlive = false
        responseVersion = head.version
        isHeadRequest = head.method == .HEAD
        writeResponseHead(
            status: status, reason: nil, headers: [("Content-Type", "text/plain")], contentLength: message.utf8.count)
        _ = writeResponseBody(ByteBuffer(string: message))
        endResponse()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .idle:
            context.close(promise: nil)  // keep-alive connection idle past --socket-timeout
        case .receiving(let head, _):
            WorkerLog.error("\(head.method) \(head.uri): request not received within --socket-timeout: 408")
            state = .discarding
            writeErrorAndClose(to: head, status: 408, "Request Timeout\n")
        case .running, .discarding:
            break  // the app is working, or an error response is on its way
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, error.errnoCode == ECONNRESET || error.errnoCode == EPIPE {
            context.close(promise: nil)
            return
        }
        WorkerLog.error("http connection from \(context.remoteAddress?.description ?? "unknown peer"): \(error)")
        context.close(promise: nil)
    }

    /// Idle keep-alive connections close now; a new one (maybe swept from the backlog) still gets its
    /// first request served, with `Connection: close`, or is closed by --socket-timeout.
    func drain() {
        draining = true
        // The response under way says so, so the client does not pipeline more on this connection.
        keepAlive = false
        if case .idle = state, servedRequests > 0 { context?.close(promise: nil) }
    }

    // MARK: ResponseSink

    func writeResponseHead(status: Int, reason: String?, headers: [(name: String, value: String)], contentLength: Int?) {
        guard let context else { return }
        var fields = HTTPHeaders(headers)
        if let contentLength {
            fields.replaceOrAdd(name: "Content-Length", value: String(contentLength))
        } else if responseVersion == .http1_0 {
            keepAlive = false  // an HTTP/1.0 body of unknown length ends with the close
        }
        if !keepAlive {
            fields.replaceOrAdd(name: "Connection", value: "close")
        } else if responseVersion == .http1_0 {
            fields.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        var code = HTTPResponseStatus(statusCode: status)
        // The app's own phrase ("200 Okay-ish") is sent as given; NIO's init would replace it.
        if let reason, reason != code.reasonPhrase { code = .custom(code: UInt(status), reasonPhrase: reason) }
        var head = HTTPResponseHead(version: responseVersion, status: code)
        head.headers = fields
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func writeResponseBody(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        guard let context else { return scheduler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if isHeadRequest || bytes.readableBytes == 0 { return context.eventLoop.makeSucceededVoidFuture() }
        let count = bytes.readableBytes
        pendingBytes += count
        let written = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(bytes))))
        written.whenComplete { [self] _ in pendingBytes -= count }
        return written
    }

    func writeResponseFile(_ file: ResponseFile, length: Int) -> EventLoopFuture<Void> {
        guard let context else { return scheduler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if isHeadRequest || length == 0 { return context.eventLoop.makeSucceededVoidFuture() }
        // The region gets its own descriptor: NIO closes it, `file` closes the app's when dropped.
        let copy = dup(file.descriptor)
        guard copy >= 0 else { return context.eventLoop.makeFailedFuture(IOError(errnoCode: errno, reason: "dup")) }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: copy)
        let region = FileRegion(fileHandle: handle, readerIndex: file.offset, endIndex: file.offset + length)
        let written = context.writeAndFlush(wrapOutboundOut(.body(.fileRegion(region))))
        written.whenComplete { _ in
            try? handle.close()
            withExtendedLifetime(file) {}
        }
        return written
    }

    func endResponse() {
        giveSlot()
        servedRequests += 1
        guard let context else { return }
        let close = !keepAlive || draining
        if case .discarding = state {} else { state = .idle }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }

    func abortResponse() {
        giveSlot()
        state = .idle
        context?.close(promise: nil)
    }
}

/// The CGI vars of an HTTP request, named and filled as nginx's uwsgi_params fills them.
enum HTTPRequestVars {
    static func make(
        head: HTTPRequestHead,
        bodyLength: Int,
        remote: SocketAddress?,
        server: (name: String, port: String)
    ) -> [(name: String, value: String)] {
        let uri = originForm(head.uri)
        let pathEnd = uri.firstIndex(of: "?") ?? uri.endIndex
        let query = pathEnd < uri.endIndex ? String(uri[uri.index(after: pathEnd)...]) : ""
        var vars: [(name: String, value: String)] = [
            ("REQUEST_METHOD", head.method.rawValue),
            ("REQUEST_URI", uri),
            ("PATH_INFO", PercentDecoding.decode(uri[..<pathEnd])),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", "HTTP/\(head.version.major).\(head.version.minor)"),
            ("REQUEST_SCHEME", "http"),
            ("SCRIPT_NAME", ""),
            ("CONTENT_TYPE", head.headers.first(name: "content-type") ?? ""),
            ("CONTENT_LENGTH", bodyLength > 0 ? String(bodyLength) : ""),
            ("REMOTE_ADDR", remote?.ipAddress ?? ""),
            ("REMOTE_PORT", remote?.port.map(String.init) ?? ""),
            ("SERVER_NAME", server.name),
            ("SERVER_PORT", server.port),
        ]
        // Repeated headers are joined as one var: ", " in general, "; " for Cookie (RFC 9110, RFC 6265).
        var seen: [String: Int] = [:]
        for (name, value) in head.headers {
            let lower = name.lowercased()
            if lower == "content-type" || lower == "content-length" || lower == "transfer-encoding" { continue }
            let key = "HTTP_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
            if let index = seen[key] {
                vars[index].value += (lower == "cookie" ? "; " : ", ") + value
            } else {
                seen[key] = vars.count
                vars.append((key, value))
            }
        }
        return vars
    }
}

extension HTTPRequestVars {
    /// `http://host/p?q` (absolute form, RFC 9112 §3.2.2) → `/p?q`, as nginx turns it into its $request_uri.
    static func originForm(_ target: String) -> String {
        for scheme in ["http://", "https://"] where target.lowercased().hasPrefix(scheme) {
            let afterScheme = target.dropFirst(scheme.count)
            guard let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
            let rest = String(afterScheme[slash...])
            return rest.hasPrefix("?") ? "/" + rest : rest
        }
        return target
    }
}

enum PercentDecoding {
    /// %XX-decodes a path; invalid escapes stay as they are (nginx would answer 400, a stricter choice
    /// left to the front).
    static func decode(_ path: Substring) -> String {
        guard path.contains("%") else { return String(path) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.utf8.count)
        var iterator = Array(path.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]),
                let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator.removeFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        return String(bytes.map { Character(Unicode.Scalar($0)) })
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
