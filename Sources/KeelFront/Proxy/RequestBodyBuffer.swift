#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A request body held until the upstream is contacted (nginx's `proxy_request_buffering on`): in memory up to
/// `client_body_buffer_size`, then in an unlinked temp file, so a slow upload never ties up a backend worker.
final class RequestBodyBuffer {
    enum Content {
        case memory(ByteBuffer)
        /// An unlinked temp file of `size` bytes, sent with sendfile.
        case file(NIOFileHandle, size: Int)
    }

    struct SpillError: Error, CustomStringConvertible {
        var description: String
    }

    private let memoryLimit: Int
    private let tempDirectory: String
    private var memory: ByteBuffer
    private var file: NIOFileHandle?
    private(set) var byteCount: Int64 = 0

    init(memoryLimit: Int, tempDirectory: String, allocator: ByteBufferAllocator) {
        self.memoryLimit = memoryLimit
        self.tempDirectory = tempDirectory
        self.memory = allocator.buffer(capacity: 0)
    }

    deinit {
        try? file?.close()
    }

    var isInFile: Bool { file != nil }

    /// Appends a chunk; past the memory limit everything moves to a temp file (written synchronously, as nginx does:
    /// the page cache absorbs it).
    func append(_ chunk: ByteBuffer) throws(SpillError) {
        byteCount += Int64(chunk.readableBytes)
        if file == nil, memory.readableBytes + chunk.readableBytes <= memoryLimit {
            var chunk = chunk
            memory.writeBuffer(&chunk)
            return
        }
        if file == nil {
            file = try openTempFile()
            try writeAll(memory)
            memory.clear()
        }
        try writeAll(chunk)
    }

    /// The whole body, ready to be written to an upstream (any number of times: retries rewrite it).
    var content: Content {
        if let file { return .file(file, size: Int(byteCount)) }
        return .memory(memory)
    }

    private func openTempFile() throws(SpillError) -> NIOFileHandle {
        var template = Array("\(tempDirectory)/keel-body-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw SpillError(
                description: "cannot create a temp file for a request body in \(tempDirectory) (\(String(cString: strerror(errno)))); "
                    + "set limits.client_body_temp_path to a writable directory")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        // Unlinked at once: the file lives only as long as this request holds the descriptor.
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
    }

    private func writeAll(_ buffer: ByteBuffer) throws(SpillError) {
        guard let file else { return }
        let failure: Int32? = try? file.withUnsafeFileDescriptor { fd -> Int32? in
            buffer.withUnsafeReadableBytes { bytes -> Int32? in
                var offset = 0
                while offset < bytes.count {
                    let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    offset += written
                }
                return nil
            }
        }
        if let failure {
            throw SpillError(
                description: "cannot write a request body to \(tempDirectory) (\(String(cString: strerror(failure)))); "
                    + "free space there or set limits.client_body_temp_path")
        }
    }
}
