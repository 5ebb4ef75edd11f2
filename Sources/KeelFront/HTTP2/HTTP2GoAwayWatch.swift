import NIOCore
import NIOHTTP2

/// Below NIOHTTP2Handler: notes the error code of each GOAWAY frame it writes. NIO answers a connection error with
/// GOAWAY and then reports the bare error, the same types it reports for stream errors (which get RST_STREAM), so
/// this is how HTTP2ConnectionGuard tells the two apart. NIO writes every frame but DATA as one buffer: a GOAWAY is
/// a buffer that is exactly one frame of type 7 on stream 0.
final class HTTP2GoAwayWatch: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// The last GOAWAY's error code, until the guard takes it.
    private var errorCode: HTTP2ErrorCode?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .byteBuffer(let buffer) = unwrapOutboundIn(data), let code = Self.goAwayErrorCode(in: buffer) {
            errorCode = code
        }
        context.write(data, promise: promise)
    }

    /// The code of a GOAWAY written since the last call, if any.
    func takeGoAway() -> HTTP2ErrorCode? {
        defer { errorCode = nil }
        return errorCode
    }

    /// The error code when `buffer` is one whole GOAWAY frame (9-byte header, last stream id, code, debug data).
    static func goAwayErrorCode(in buffer: ByteBuffer) -> HTTP2ErrorCode? {
        let bytes = buffer.readableBytes
        guard bytes >= 17, buffer.getInteger(at: buffer.readerIndex + 3, as: UInt8.self) == 0x7,
            let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map({ $0 >> 8 }),
            Int(length) == bytes - 9,
            buffer.getInteger(at: buffer.readerIndex + 5, as: UInt32.self).map({ $0 & 0x7FFF_FFFF }) == 0,
            let code = buffer.getInteger(at: buffer.readerIndex + 13, as: UInt32.self)
        else { return nil }
        return HTTP2ErrorCode(networkCode: Int(code))
    }
}

extension HTTP2ErrorCode {
    /// RFC 9113's name, as nginx and clients log it.
    var rfcName: String {
        let names = [
            "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
            "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
        ]
        return networkCode < names.count ? names[networkCode] : "0x\(String(networkCode, radix: 16))"
    }
}

@available(*, unavailable)
extension HTTP2GoAwayWatch: Sendable {}
