import NIOCore
import UWSGI

/// One libFuzzer input: the bytes are what a uwsgi server answers on one connection, split where the first byte says,
/// after a request whose kind (HEAD or not) the second byte says; then the peer closes. The parser must end in an
/// event or a typed error, never a crash, hang or over-read.
public func fuzzResponseParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = max(1, Int(bytes[0]))
    let isHEAD = bytes[1] & 1 == 1
    var parser = UWSGIResponseParser(maxHeadSize: 4096)
    var buffer = ByteBuffer()
    var offset = 2
    var responses = 0
    do {
        parser.expectResponse(isHEAD: isHEAD)
        while offset < size {
            let end = min(size, offset + split)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[offset..<end]))
            offset = end
            while let event = try parser.next(&buffer) {
                if case .end = event, parser.isIdle, responses < 8 {
                    // A persistent connection: the next request goes out, as keel does.
                    responses += 1
                    parser.expectResponse(isHEAD: isHEAD)
                }
            }
        }
        _ = try parser.finish()
    } catch {
        _ = error.description
    }
    return 0
}
