internal import COpenSSL
import NIOCore

/// Where OpenSSL's outgoing records land: a BIO whose write appends straight into a ByteBuffer, so ciphertext is
/// copied once (from OpenSSL's record buffer into the buffer the socket write sends) instead of twice through a
/// memory BIO and a `BIO_read`.
final class CiphertextSink {
    private(set) var buffer: ByteBuffer

    init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.buffer = allocator.buffer(capacity: 0)
    }

    var isEmpty: Bool { buffer.readableBytes == 0 }

    /// The ciphertext so far; the sink starts a fresh buffer (the taken one is the socket's now, never written again).
    func take() -> ByteBuffer? {
        guard buffer.readableBytes > 0 else { return nil }
        defer { buffer = ByteBuffer() }
        return buffer
    }

    fileprivate func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.writeBytes(bytes)
    }

    /// A new BIO that writes into `sink` (retained by the BIO until OpenSSL frees it).
    static func makeBIO(_ sink: CiphertextSink) -> OpaquePointer? {
        guard let method = Self.method, let bio = BIO_new(method) else { return nil }
        BIO_set_data(bio, Unmanaged.passRetained(sink).toOpaque())
        BIO_set_init(bio, 1)
        return bio
    }

    /// One BIO_METHOD for every connection, made once and never changed (OpenSSL reads it from any thread).
    nonisolated(unsafe) private static let method: OpaquePointer? = {
        guard let method = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "keel ciphertext sink") else { return nil }
        _ = BIO_meth_set_write(method) { bio, data, length in
            guard let bio, let data, length > 0, let context = BIO_get_data(bio) else { return 0 }
            Unmanaged<CiphertextSink>.fromOpaque(context).takeUnretainedValue()
                .append(UnsafeRawBufferPointer(start: data, count: Int(length)))
            return length
        }
        _ = BIO_meth_set_ctrl(method) { bio, command, _, _ in
            switch command {
            case BIO_CTRL_FLUSH: 1  // records are in the buffer already; the handler decides when the socket flushes
            case BIO_CTRL_PENDING, BIO_CTRL_WPENDING: 0
            default: 0
            }
        }
        _ = BIO_meth_set_destroy(method) { bio in
            guard let bio else { return 0 }
            if let context = BIO_get_data(bio) {
                Unmanaged<CiphertextSink>.fromOpaque(context).release()
                BIO_set_data(bio, nil)
            }
            return 1
        }
        return method
    }()
}
