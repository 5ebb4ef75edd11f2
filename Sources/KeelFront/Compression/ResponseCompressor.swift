#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1

/// The gzip filter (nginx's `gzip` module), one per connection, in the response chain right after pipelining: it
/// notes each request's Accept-Encoding and method as the request passes in, and decides per response. A response it
/// does not compress passes through untouched; one it does loses Content-Length, gains `Content-Encoding: gzip`,
/// and is compressed as it flows, flushed whenever the proxy flushes (so streamed responses stay streamed).
final class ResponseCompressor: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What the filter needs to know of a request, in arrival order (pipelined requests are answered in order).
    private struct RequestTraits {
        var acceptsGzip: Bool
        var isHead: Bool
    }

    private let configuration: FrontConfiguration.Compression
    private var requests = CircularBuffer<RequestTraits>()
    private var stream: GzipStream?
    private let deflaters: DeflaterPool

    init(configuration: FrontConfiguration.Compression, deflaters: DeflaterPool) {
        self.configuration = configuration
        self.deflaters = deflaters
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            requests.append(
                RequestTraits(acceptsGzip: AcceptEncoding.acceptsGzip(head.headers["accept-encoding"]), isHead: head.method == .HEAD))
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            if head.status.code < 200 { return context.write(data, promise: promise) }  // 100 Continue: not the answer
            let traits = requests.popFirst() ?? RequestTraits(acceptsGzip: false, isHead: false)
            stream = nil
            guard CompressionPolicy.isCompressible(head, configuration) else {
                guard CompressionPolicy.variesWithoutCompressing(head, configuration) else { return context.write(data, promise: promise) }
                CompressionPolicy.addVary(&head.headers)
                return context.write(wrapOutboundOut(.head(head)), promise: promise)
            }
            // Caches must keep the two variants apart whether or not this client took gzip (nginx's gzip_vary).
            CompressionPolicy.addVary(&head.headers)
            if traits.acceptsGzip && !traits.isHead, let gzip = try? GzipStream(level: configuration.level, allocator: context.channel.allocator, pool: deflaters) {
                stream = gzip
                CompressionPolicy.markCompressed(&head.headers)
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .body(let body):
            guard let stream else { return context.write(data, promise: promise) }
            do {
                let compressed: ByteBuffer
                switch body {
                case .byteBuffer(let buffer): compressed = try stream.compress(buffer)
                case .fileRegion(let region): compressed = try compressFile(region, with: stream, allocator: context.channel.allocator)
                }
                context.write(wrapOutboundOut(.body(.byteBuffer(compressed))), promise: promise)
            } catch {
                fail(context, error, promise)
            }
        case .end(let trailers):
            guard let stream else { return context.write(data, promise: promise) }
            self.stream = nil
            do {
                let tail = try stream.finish()
                context.write(wrapOutboundOut(.body(.byteBuffer(tail))), promise: nil)
                context.write(wrapOutboundOut(.end(trailers)), promise: promise)
            } catch {
                fail(context, error, promise)
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        if let stream, let pending = try? stream.flush(), pending.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(pending))), promise: nil)
        }
        context.flush()
    }

    /// A file body is read here (as nginx's gzip reads it) instead of going out with sendfile.
    private func compressFile(_ region: FileRegion, with stream: GzipStream, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var output = allocator.buffer(capacity: 0)
        var offset = region.readerIndex
        var chunk = allocator.buffer(capacity: 64 * 1024)
        while offset < region.endIndex {
            chunk.clear()
            let wanted = min(64 * 1024, region.endIndex - offset)
            let read = try region.fileHandle.withUnsafeFileDescriptor { fd in
                chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { bytes in
                    max(0, pread(fd, bytes.baseAddress, wanted, off_t(offset)))
                }
            }
            if read == 0 { throw IOError(errnoCode: EIO, reason: "file shorter than announced") }
            offset += read
            var compressed = try stream.compress(chunk)
            output.writeBuffer(&compressed)
        }
        return output
    }

    /// zlib failing mid-response leaves no way to finish it correctly: the connection is closed.
    private func fail(_ context: ChannelHandlerContext, _ error: any Error, _ promise: EventLoopPromise<Void>?) {
        FrontLog.error("gzip failed mid-response (\(error)); connection closed")
        stream = nil
        promise?.fail(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ResponseCompressor: Sendable {}

/// Which responses are gzipped, as nginx's gzip module decides: listed types only, long enough, not already encoded,
/// not a 204/304/206, and not when the upstream says `Cache-Control: no-transform`.
enum CompressionPolicy {
    static func isCompressible(_ head: HTTPResponseHead, _ configuration: FrontConfiguration.Compression) -> Bool {
        guard configuration.enabled else { return false }
        switch head.status.code {
        case 204, 206, 304: return false
        case 200...: break
        default: return false
        }
        // The type first: most responses that are not compressed fail there, and cheapest.
        let headers = head.headers
        guard let type = headers.first(name: "content-type"), matches(type, configuration.types) else { return false }
        if let encoding = headers.first(name: "content-encoding"),
            !ASCIIText.equalsLowercase(Substring(encoding).trimmingSpaces.utf8, "identity".utf8)
        {
            return false
        }
        if listsToken(headers, "cache-control", "no-transform") { return false }
        if let length = headers.first(name: "content-length").flatMap({ Int($0) }), length < configuration.minLength {
            return false
        }
        return true
    }

    /// Whether a comma-separated header lists `token` (lowercase), in any case, without splitting into new arrays.
    static func listsToken(_ headers: HTTPHeaders, _ name: String, _ token: String) -> Bool {
        for (headerName, value) in headers where ASCIIText.equalsLowercase(headerName.utf8, name.utf8) {
            for item in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                var trimmed = Substring(item)
                trimmed = trimmed.trimmingSpaces
                if ASCIIText.equalsLowercase(trimmed.utf8, token.utf8) { return true }
            }
        }
        return false
    }

    /// A 304 or 206 carries the Vary its 200 would (RFC 9110 §15.4.5, §15.3.7): when its type is one the filter
    /// compresses, or, for a 304 that names no type, always (it cannot tell, and caches must keep variants apart).
    static func variesWithoutCompressing(_ head: HTTPResponseHead, _ configuration: FrontConfiguration.Compression) -> Bool {
        guard configuration.enabled, head.status.code == 304 || head.status.code == 206 else { return false }
        guard let type = head.headers.first(name: "content-type") else { return head.status.code == 304 }
        return matches(type, configuration.types)
    }

    /// "text/html; charset=utf-8" against patterns "text/*", "application/json", "application/*+json" (patterns are
    /// lowercase already; compared byte by byte, without copies: this runs for every response).
    static func matches(_ contentType: String, _ patterns: [String]) -> Bool {
        var type = Substring(contentType)
        if let semicolon = type.utf8.firstIndex(of: UInt8(ascii: ";")) { type = type[..<semicolon] }
        type = type.trimmingSpaces
        let typeBytes = type.utf8
        return patterns.contains { pattern in
            if pattern == "*" { return true }
            let patternBytes = pattern.utf8
            guard let star = patternBytes.firstIndex(of: UInt8(ascii: "*")) else {
                return ASCIIText.equalsLowercase(typeBytes, patternBytes)
            }
            let prefix = patternBytes[..<star]
            let suffix = patternBytes[patternBytes.index(after: star)...]
            guard typeBytes.count >= prefix.count + suffix.count else { return false }
            return ASCIIText.equalsLowercase(typeBytes.prefix(prefix.count), prefix)
                && ASCIIText.equalsLowercase(typeBytes.suffix(suffix.count), suffix)
        }
    }

    static func addVary(_ headers: inout HTTPHeaders) {
        let listed = listsToken(headers, "vary", "accept-encoding") || listsToken(headers, "vary", "*")
        if !listed { headers.add(name: "Vary", value: "Accept-Encoding") }
    }

    /// The length is unknown until the stream ends; a strong ETag no longer names these bytes, a weak one still does.
    static func markCompressed(_ headers: inout HTTPHeaders) {
        headers.remove(name: "content-length")
        headers.replaceOrAdd(name: "Content-Encoding", value: "gzip")
        if let etag = headers.first(name: "etag"), !etag.hasPrefix("W/") {
            headers.replaceOrAdd(name: "ETag", value: "W/" + etag)
        }
    }
}
