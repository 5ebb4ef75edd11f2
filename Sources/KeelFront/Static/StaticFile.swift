#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// An opened regular file, shared by the responses sending it and the open-file cache: its descriptor closes when
/// the last of them lets go. Size and validators come from the open descriptor itself (O_NONBLOCK: a file swapped
/// for a FIFO must not block the loop).
final class StaticFile {
    let handle: NIOFileHandle
    let size: Int
    let modified: Int
    /// nginx's ETag form: "mtime-size" in hex.
    let etag: String
    /// The path under the root it was opened as (its extension picks the media type).
    var name = ""
    /// Worked out once per opened file (a cached one serves many requests).
    private(set) lazy var lastModified = HTTPDateClock.format(modified)
    private var cachedType: (overrides: [String: String], type: String)?

    /// The media type for `name`, under the configuration's `[mime_types]`.
    func contentType(_ overrides: [String: String]) -> String {
        if let cachedType, cachedType.overrides == overrides { return cachedType.type }
        let type = MediaTypes.type(forPath: name, overrides: overrides)
        cachedType = (overrides, type)
        return type
    }

    init(descriptor: Int32, size: Int, modified: Int) {
        self.handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
        self.size = size
        self.modified = modified
        self.etag = "\"\(String(modified, radix: 16))-\(String(size, radix: 16))\""
    }

    deinit {
        try? handle.close()
    }

    /// The bytes of `range`, read now (small files go out in one send with their head); nil if the file shrank.
    func read(_ range: Range<Int>, allocator: ByteBufferAllocator) -> ByteBuffer? {
        var buffer = allocator.buffer(capacity: range.count)
        var offset = range.lowerBound
        while offset < range.upperBound {
            let wanted = range.upperBound - offset
            let got = try? handle.withUnsafeFileDescriptor { fd in
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { bytes in
                    max(0, pread(fd, bytes.baseAddress, wanted, off_t(offset)))
                }
            }
            guard let got, got > 0 else { return nil }
            offset += got
        }
        return buffer
    }
}
