internal import COpenSSL
import NIOCore

/// One TLS session: ciphertext from the socket goes into a memory BIO with `receive`, ciphertext for the socket
/// collects in a `CiphertextSink` and comes out with `takeOutput`; plaintext goes through `readPlaintext` and `write`. No I/O of its own, so it
/// is driven by the channel handler and testable without one. Owns the `SSL*` (and with it both BIOs).
final class TLSConnection {
    let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let output = CiphertextSink()

    enum HandshakeResult {
        case complete
        case needsMoreData
        case failed(String)
    }

    enum ReadResult {
        case needsMoreData
        /// The peer sent close_notify.
        case closed
        case failed(String)
    }

    init?(context: OpaquePointer, isServer: Bool) {
        guard let ssl = SSL_new(context) else { return nil }
        guard let readBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        guard let writeBIO = CiphertextSink.makeBIO(output) else {
            BIO_free(readBIO)
            SSL_free(ssl)
            return nil
        }
        // An empty read BIO means "wait for more", not end of file.
        _ = keel_BIO_set_mem_eof_return(readBIO, -1)
        SSL_set_bio(ssl, readBIO, writeBIO)
        if isServer { SSL_set_accept_state(ssl) } else { SSL_set_connect_state(ssl) }
        self.ssl = ssl
        self.readBIO = readBIO
    }

    /// Set when this connection offers other ALPN protocols than its context; kept alive as long as the SSL.
    private var ownALPN: ALPNWire?

    func restrictALPN(to wire: ALPNWire) {
        ownALPN = wire
        SSL_set_ex_data(ssl, ALPNWire.exDataIndex, Unmanaged.passUnretained(wire).toOpaque())
    }

    deinit {
        SSL_free(ssl)
    }

    /// Hands ciphertext read from the socket to OpenSSL (the one copy a memory BIO needs).
    func receive(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = BIO_write(readBIO, bytes.baseAddress! + offset, Int32(min(bytes.count - offset, Int(Int32.max))))
                if written <= 0 { return }  // a memory BIO only fails when out of memory
                offset += Int(written)
            }
        }
    }

    func handshake() -> HandshakeResult {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return .complete }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .needsMoreData
        default: return .failed(OpenSSLErrors.drain())
        }
    }

    /// Decrypts everything available into `buffer`, growing it as needed.
    func readPlaintext(into buffer: inout ByteBuffer) -> ReadResult {
        while true {
            ERR_clear_error()
            var status: Int32 = 0
            // Room for a whole record only when the buffer is full: the last try usually just hears WANT_READ.
            let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: buffer.writableBytes > 0 ? 1 : 16 * 1024) { space in
                let read = SSL_read(ssl, space.baseAddress, Int32(min(space.count, Int(Int32.max))))
                status = read
                return read > 0 ? Int(read) : 0
            }
            if count > 0 { continue }
            switch SSL_get_error(ssl, status) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .needsMoreData
            case SSL_ERROR_ZERO_RETURN: return .closed
            default: return .failed(OpenSSLErrors.drain())
            }
        }
    }

    /// Encrypts all of `bytes` (a memory BIO never pushes back); nil on success, else OpenSSL's reason.
    func write(_ bytes: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        while offset < bytes.count {
            ERR_clear_error()
            let written = SSL_write(ssl, bytes.baseAddress! + offset, Int32(min(bytes.count - offset, 1 << 30)))
            if written <= 0 { return OpenSSLErrors.drain() }
            offset += Int(written)
        }
        return nil
    }

    /// Frees OpenSSL's record buffers (about 34 KiB) of a connection gone quiet; they come back on the next record.
    /// False when they are in use (a record half read or written).
    @discardableResult
    func releaseBuffers() -> Bool {
        SSL_free_buffers(ssl) == 1
    }

    /// Queues our close_notify.
    func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    var hasOutput: Bool { !output.isEmpty }

    /// The ciphertext waiting for the socket, in one buffer, or nil when there is none.
    func takeOutput(allocator: ByteBufferAllocator) -> ByteBuffer? {
        output.take()
    }

    /// The ALPN protocol agreed on, if any.
    var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }
}
