import NIOCore

/// The keep-alive extension of uwsgi spoken between keel and keel-pool ("the keel wire", docs/ARCHITECTURE.md).
///
/// - keel offers it on every request by setting the packet's modifier2 to `offer` (real uWSGI ignores modifier2
///   for modifier1 0, and nginx sends 0, so neither is affected).
/// - A keel-pool that accepts starts each response with a `frame` of kind `response`: it says who answered
///   (worker pid, thread count, workers in the pool) and that the HTTP/1.1 response after it is framed (Content-Length or chunked, no
///   body for HEAD, 1xx, 204 and 304), so the connection carries the next request once it has ended.
/// - A keel-pool that closes a persistent connection at a request boundary first sends a `goodbye` frame: every byte
///   keel sent after the last response was left unread, so a request sent meanwhile may go anywhere else.
/// A response that does not start with a frame is classic uwsgi: raw HTTP, ended by the close.
public enum KeelWire {
    /// Request modifier2: "framed responses welcome, the connection stays open".
    public static let offer: UInt8 = 0x4B  // "K"
    /// First byte of a frame; an HTTP response starts with "H", so the two cannot be confused.
    public static let frameMarker: UInt8 = 0x4B

    public enum FrameKind: UInt8, Sendable {
        case response = 1
        case goodbye = 2
    }

    /// Who answered a framed response, so keel can tell a busy worker's connections from an idle one's.
    public struct Responder: Equatable, Sendable {
        public var pid: UInt32
        /// The worker's --threads: how many requests it runs at once.
        public var capacity: UInt16
        /// Workers serving in the whole pool now, so keel knows when some it has no connection to may be free.
        public var workers: UInt16

        public init(pid: UInt32, capacity: UInt16, workers: UInt16 = 1) {
            self.pid = pid
            self.capacity = capacity
            self.workers = workers
        }
    }

    /// Size of a response frame: 4-byte header (marker, payload size u16le, kind) + pid u32le + capacity u16le +
    /// workers u16le.
    public static let responseFrameSize = 12
    static let responsePayloadSize = 8
    public static let goodbyeFrameSize = 4

    public static func writeResponseFrame(_ responder: Responder, into buffer: inout ByteBuffer) {
        buffer.writeInteger(frameMarker)
        buffer.writeInteger(UInt16(responsePayloadSize), endianness: .little)
        buffer.writeInteger(FrameKind.response.rawValue)
        buffer.writeInteger(responder.pid, endianness: .little)
        buffer.writeInteger(responder.capacity, endianness: .little)
        buffer.writeInteger(responder.workers, endianness: .little)
    }

    public static func writeGoodbyeFrame(into buffer: inout ByteBuffer) {
        buffer.writeInteger(frameMarker)
        buffer.writeInteger(UInt16(0), endianness: .little)
        buffer.writeInteger(FrameKind.goodbye.rawValue)
    }

    /// The goodbye frame's bytes, for a raw write.
    public static let goodbyeBytes: [UInt8] = [frameMarker, 0, 0, FrameKind.goodbye.rawValue]
}
