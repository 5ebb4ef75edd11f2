import NIOCore
import UWSGI

/// One libFuzzer input: the bytes are what a front sends to a uwsgi socket, split where the first byte says; then the
/// peer closes. The parser must end in events or a typed error, never a crash, hang or over-read.
public func fuzzRequestParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = max(1, Int(bytes[0]))
    var parser = UWSGIRequestParser()
    var buffer = ByteBuffer()
    var offset = 1
    do {
        while offset < size {
            let end = min(size, offset + split)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[offset..<end]))
            offset = end
            while let event = try parser.next(&buffer) {
                if case .head(let head) = event { _ = head["REQUEST_METHOD"] }
            }
        }
        try parser.finish(leftover: buffer)
    } catch {
        _ = error.description
    }
    return 0
}
