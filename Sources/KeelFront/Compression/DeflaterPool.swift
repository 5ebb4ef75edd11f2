import CompressNIO
import NIOCore

/// Deflate states kept per event loop and reset between responses, as nginx reuses its gzip buffers: setting up a
/// state (deflateInit2 allocates ~270 KiB at level 1) per response cost more than compressing a small one.
/// Touched only on its loop; a state is handed to one response at a time.
final class DeflaterPool {
    /// At most this many idle states per level: one per concurrently gzipped response, beyond that they are freed.
    static let maxIdlePerLevel = 16
    private var idle: [Int: [ZlibCompressor]] = [:]
    /// The loop's buffer for reading file slices to compress (one response at a time uses it).
    private var readBuffer: ByteBuffer?

    init() {}

    /// A gzip (RFC 1952) deflate state at `level`, window 15, memLevel 8: the same stream a fresh one would make.
    func take(level: Int) throws -> ZlibCompressor {
        if let reused = idle[level]?.popLast() { return reused }
        return try ZlibCompressor(algorithm: .gzip, configuration: ZlibConfiguration(compressionLevel: Int32(level)))
    }

    /// Back into the pool after its stream ended (or was abandoned): reset, so the next response starts clean.
    func give(_ compressor: ZlibCompressor, level: Int) {
        guard (idle[level]?.count ?? 0) < Self.maxIdlePerLevel, (try? compressor.reset()) != nil else { return }
        idle[level, default: []].append(compressor)
    }

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// A cleared read buffer of at least `capacity`, to give back with `giveReadBuffer` (no 64 KiB allocation per
    /// gzipped file).
    func takeReadBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        if var buffer = readBuffer {
            readBuffer = nil
            buffer.clear()
            return buffer
        }
        return allocator.buffer(capacity: capacity)
    }

    func giveReadBuffer(_ buffer: ByteBuffer) {
        readBuffer = buffer
    }
}
