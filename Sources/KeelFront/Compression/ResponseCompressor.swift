#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import UWSGI

/// The gzip filter (nginx's `gzip` module) for one connection's responses, driven by ProxyHandler as it writes
/// them (not a channel handler: passing every request and response part through one cost each request about 4 µs).
/// A response it does not compress is untouched; one it does loses Content-Length, gains `Content-Encoding: gzip`,
/// and is compressed as it flows, sync-flushed whenever the proxy flushes (so streamed responses stay streamed).
final class ResponseCompressor {
    private let configuration: FrontConfiguration.Compression
    private let deflaters: DeflaterPool
    private var stream: GzipStream?

    init(configuration: FrontConfiguration.Compression, deflaters: DeflaterPool) {
        self.configuration = configuration
        self.deflaters = deflaters
    }

    /// Whether the response begun by the last `begin` is being compressed.
    var isCompressing: Bool { stream != nil }

    /// Decides for a final response head (Vary, Content-Encoding, Content-Length, ETag adjusted in place).
    /// `request` is only read when the response could be compressed: most are not, and skip the parsing.
    func begin(_ head: inout HTTPResponseHead, request: HTTPRequestHead, allocator: ByteBufferAllocator) {
        stream = nil
        guard CompressionPolicy.isCompressible(head, configuration) else {
            if CompressionPolicy.variesWithoutCompressing(head, configuration) { CompressionPolicy.addVary(&head.headers) }
            return
        }
        // Caches must keep the two variants apart whether or not this client took gzip (nginx's gzip_vary).
        CompressionPolicy.addVary(&head.headers)
        guard request.method != .HEAD, AcceptEncoding.acceptsGzip(request.headers["accept-encoding"]),
            let gzip = try? GzipStream(level: configuration.level, allocator: allocator, pool: deflaters)
        else { return }
        stream = gzip
        CompressionPolicy.markCompressed(&head.headers)
    }

    func compress(_ buffer: ByteBuffer) throws -> ByteBuffer {
        try stream!.compress(buffer)
    }

    /// A file body is read here (as nginx's gzip reads it) instead of going out with sendfile, then sync-flushed:
    /// the whole slice compressed into one buffer, read through the loop's reused read buffer.
    func compressFileAndFlush(_ region: FileRegion, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let stream = stream!
        var output = allocator.buffer(capacity: 0)
        var chunk = deflaters.takeReadBuffer(capacity: 64 * 1024, allocator: allocator)
        defer { deflaters.giveReadBuffer(chunk) }
        var offset = region.readerIndex
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
            try stream.compress(chunk, into: &output)
        }
        try stream.flush(into: &output)
        return output
    }

    /// Everything compressed so far, byte-aligned (nil when not compressing or nothing is pending).
    func flush() throws -> ByteBuffer? {
        guard let stream else { return nil }
        let pending = try stream.flush()
        return pending.readableBytes > 0 ? pending : nil
    }

    /// The end of the stream and its trailer; the filter is idle afterwards.
    func finish() throws -> ByteBuffer? {
        guard let stream else { return nil }
        self.stream = nil
        return try stream.finish()
    }

    /// The response was cut short: its deflate state goes back to the pool.
    func abandon() {
        stream = nil
    }
}

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
