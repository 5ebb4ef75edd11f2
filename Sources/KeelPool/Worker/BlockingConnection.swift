import KeelApp
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A connected socket used with blocking calls and SO_RCVTIMEO/SO_SNDTIMEO deadlines.
struct BlockingConnection {
    let fd: Int32

    /// A connection already set up (a persistent one, back for its next request).
    init(fd: Int32) {
        self.fd = fd
    }

    /// Set per connection: accepted AF_UNIX sockets do not inherit the listener's timeouts.
    init(fd: Int32, timeoutSeconds: Int) {
        self.fd = fd
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    enum ReadResult {
        case bytes
        case closed
        case timedOut
        case failed(Int32)
    }

    func read(into buffer: inout ByteBuffer) -> ReadResult {
        buffer.discardReadBytes()
        buffer.reserveCapacity(minimumWritableBytes: 16 * 1024)
        var result = ReadResult.closed
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { raw in
            let (count, outcome) = receive(into: raw)
            result = outcome
            return count
        }
        return result
    }

    /// One recv into `raw`: the byte count and what happened.
    func receive(into raw: UnsafeMutableRawBufferPointer) -> (Int, ReadResult) {
        while true {
            let received = recv(fd, raw.baseAddress, raw.count, 0)
            if received > 0 { return (received, .bytes) }
            if received == 0 { return (0, .closed) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return (0, .timedOut)
            case let code: return (0, .failed(code))
            }
        }
    }

    /// Writes all of `buffer`; false if the peer went away or stalled past the send timeout.
    func writeAll(_ buffer: ByteBuffer) -> Bool {
        var buffer = buffer
        while buffer.readableBytes > 0 {
            let n = buffer.withUnsafeReadableBytes { raw in send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            buffer.moveReaderIndex(forwardBy: n)
        }
        return true
    }

    /// Sends `length` bytes of `file` from `offset` with sendfile(2); false if the peer went away,
    /// stalled past the send timeout, or the file shrank under it.
    func sendFile(_ file: Int32, offset: Int, length: Int) -> Bool {
        var position = off_t(offset)
        var left = length
        while left > 0 {
            let sent = sendfile(fd, file, &position, min(left, 1 << 30))
            if sent < 0 {
                if errno == EINTR { continue }
                return false
            }
            if sent == 0 { return false }
            left -= sent
        }
        return true
    }

    func close() { Glibc.close(fd) }
}

struct ClientGone: Error, CustomStringConvertible {
    var description: String { "the client closed the connection or stopped reading (--socket-timeout)" }
}

/// `wsgi.input` on a uwsgi socket: the body is read from the connection as the app asks for it,
/// never past CONTENT_LENGTH. Bytes that came in with the vars are handed out first.
final class SocketBodyReader: BodyReader, @unchecked Sendable {
    private let connection: BlockingConnection
    private var received: ByteBuffer
    private(set) var remaining: Int

    struct BodyCut: Error, CustomStringConvertible {
        var description: String
    }

    init(connection: BlockingConnection, received: ByteBuffer, length: Int) {
        self.connection = connection
        self.received = received
        self.remaining = length
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let wanted = min(buffer.count, remaining)
        guard wanted > 0 else { return 0 }
        if received.readableBytes > 0 {
            let count = min(wanted, received.readableBytes)
            received.withUnsafeReadableBytes { raw in
                buffer.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: count)
            }
            received.moveReaderIndex(forwardBy: count)
            remaining -= count
            return count
        }
        let (count, outcome) = connection.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted]))
        switch outcome {
        case .bytes:
            remaining -= count
            return count
        case .closed:
            throw BodyCut(description: "the client closed the connection with \(remaining) bytes of the body unsent")
        case .timedOut:
            throw BodyCut(description: "the request body stalled with \(remaining) bytes unsent (--socket-timeout)")
        case .failed(let code):
            throw BodyCut(description: "reading the request body failed: \(SystemError.message(code))")
        }
    }

    /// Reads and drops what the app left unread; false if the client did not send it.
    @discardableResult
    func drain() -> Bool {
        guard remaining > 0 else { return true }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { scratch.deallocate() }
        while remaining > 0 {
            guard (try? read(into: scratch)) != nil else { return false }
        }
        return true
    }
}
