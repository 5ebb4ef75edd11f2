import NIOCore

/// Small plaintext writes between two flushes, encrypted together: a response's head and short body become one
/// TLS record (one SSL_write, one record header and tag) instead of one per part, as nginx's `ssl_buffer_size`
/// gathers them. Larger writes are not copied here: they are encrypted straight from the caller's buffer.
struct PendingPlaintext {
    /// One TLS record's worth: the most plaintext a record carries.
    static let limit = 16 * 1024

    private var bytes: ByteBuffer?
    private var promises: [EventLoopPromise<Void>] = []

    var isEmpty: Bool { (bytes?.readableBytes ?? 0) == 0 && promises.isEmpty }

    func fits(_ count: Int) -> Bool { (bytes?.readableBytes ?? 0) + count <= Self.limit }

    mutating func append(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?, allocator: ByteBufferAllocator) {
        if bytes == nil { bytes = allocator.buffer(capacity: Self.limit) }
        var incoming = buffer
        bytes!.writeBuffer(&incoming)
        if let promise { promises.append(promise) }
    }

    /// What to encrypt now, and the promises its write completes; empty afterwards (the buffer is kept for reuse).
    mutating func take() -> (bytes: ByteBuffer, promises: [EventLoopPromise<Void>])? {
        guard !isEmpty, let pending = bytes else { return nil }
        defer {
            bytes!.clear()
            promises = []
        }
        return (pending, promises)
    }

    mutating func fail(_ error: any Error) {
        let failed = promises
        promises = []
        bytes?.clear()
        for promise in failed { promise.fail(error) }
    }
}
