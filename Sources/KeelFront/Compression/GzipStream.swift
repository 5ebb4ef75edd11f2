import CompressNIO
import NIOCore

/// One response's gzip stream on the system zlib (compress-nio links libz): input goes in as it arrives, `flush`
/// pushes out everything so far (a sync flush, for streamed responses), `finish` ends the stream with its trailer.
/// Its deflate state comes from the loop's pool and goes back when the stream ends or is dropped.
final class GzipStream {
    private let compressor: ZlibCompressor
    private let allocator: ByteBufferAllocator
    private let pool: DeflaterPool
    private let level: Int
    private static let chunkSize = 16 * 1024

    init(level: Int, allocator: ByteBufferAllocator, pool: DeflaterPool) throws {
        self.compressor = try pool.take(level: level)
        self.allocator = allocator
        self.pool = pool
        self.level = level
    }

    deinit {
        pool.give(compressor, level: level)
    }

    /// Compressed bytes for `input` (often none yet: zlib holds small inputs until a flush).
    func compress(_ input: ByteBuffer) throws -> ByteBuffer {
        var output = allocator.buffer(capacity: max(Self.chunkSize, compressor.maxSize(from: input)))
        try compress(input, into: &output)
        return output
    }

    /// The same, appended to `output` (a file's slices go into one buffer, without a copy per piece).
    func compress(_ input: ByteBuffer, into output: inout ByteBuffer) throws {
        var input = input
        output.reserveCapacity(minimumWritableBytes: compressor.maxSize(from: input))
        while input.readableBytes > 0 {
            if output.writableBytes == 0 { output.reserveCapacity(minimumWritableBytes: Self.chunkSize) }
            do {
                try compressor.deflate(from: &input, to: &output, flush: .no)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                continue  // the output filled up: more room, same input
            }
        }
    }

    /// Everything compressed so far, byte-aligned so the client can decode it now.
    func flush() throws -> ByteBuffer {
        var output = allocator.buffer(capacity: Self.chunkSize)
        try drain(.sync, into: &output)
        return output
    }

    /// The same, appended to `output`.
    func flush(into output: inout ByteBuffer) throws { try drain(.sync, into: &output) }

    /// The rest of the stream and the gzip trailer.
    func finish() throws -> ByteBuffer {
        var output = allocator.buffer(capacity: Self.chunkSize)
        try drain(.finish, into: &output)
        return output
    }

    private func drain(_ mode: CompressNIOFlush, into output: inout ByteBuffer) throws {
        var empty = allocator.buffer(capacity: 0)
        if output.writableBytes == 0 { output.reserveCapacity(minimumWritableBytes: Self.chunkSize) }
        while true {
            let before = output.writerIndex
            do {
                try compressor.deflate(from: &empty, to: &output, flush: mode)
                // A sync flush that filled the buffer exactly may have more to give.
                if mode == .finish || output.writableBytes > 0 { return }
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // zlib's "no progress possible" with room left: nothing more is pending.
                if output.writableBytes > 0 && (mode == .sync || output.writerIndex == before) { return }
            }
            output.reserveCapacity(minimumWritableBytes: Self.chunkSize)
        }
    }
}
