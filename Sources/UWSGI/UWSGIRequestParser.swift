import NIOCore

/// Incremental decoder of uwsgi request packets: feed it whatever bytes arrived, in any split,
/// and it yields the head once the var block is complete, then the body as it comes, then `.end`
/// (also for a body-less request).
/// A pure state machine over `ByteBuffer`: no channel, no socket.
public struct UWSGIRequestParser: Sendable {
    public enum Event: Sendable {
        case head(UWSGIRequestHead)
        case body(ByteBuffer)
        case end
    }

    enum State: Sendable {
        case header
        case vars(UWSGIPacketHeader)
        case body(expected: Int, remaining: Int)
        case done
    }

    private var state: State = .header
    /// modifier1 values this parser accepts; nginx's uwsgi_pass sends 0.
    public let supportedModifier1: Set<UInt8>

    public init(supportedModifier1: Set<UInt8> = [0]) {
        self.supportedModifier1 = supportedModifier1
    }

    /// True once a whole request (head and body) has been delivered.
    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Consumes what it can from `buffer` and returns the next event, or nil when it needs more bytes.
    /// Call repeatedly until nil. After `.end` it consumes nothing (uwsgi carries one request per connection).
    public mutating func next(_ buffer: inout ByteBuffer) throws(UWSGIError) -> Event? {
        switch state {
        case .header:
            if let error = Self.recogniseHTTP(buffer) { throw error }
            guard buffer.readableBytes >= 4 else { return nil }
            let modifier1: UInt8 = buffer.readInteger()!
            let datasize: UInt16 = buffer.readInteger(endianness: .little)!
            let modifier2: UInt8 = buffer.readInteger()!
            guard supportedModifier1.contains(modifier1) else { throw .unsupportedModifier1(modifier1) }
            state = .vars(UWSGIPacketHeader(modifier1: modifier1, datasize: datasize, modifier2: modifier2))
            return try next(&buffer)

        case .vars(let header):
            guard let block = buffer.readSlice(length: Int(header.datasize)) else { return nil }
            let vars = try UWSGIPacket.parseVars(block)
            var contentLength = 0
            for v in vars where v.name == "CONTENT_LENGTH" {
                contentLength = try UWSGIPacket.parseContentLength(v.value)
                break
            }
            state = .body(expected: contentLength, remaining: contentLength)
            let head = UWSGIRequestHead(
                modifier1: header.modifier1, modifier2: header.modifier2, vars: vars, contentLength: contentLength)
            return .head(head)

        case .body(_, 0):
            state = .done
            return .end

        case .body(let expected, let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            let chunk = buffer.readSlice(length: count)!
            state = .body(expected: expected, remaining: remaining - count)
            return .body(chunk)

        case .done:
            return nil
        }
    }

    /// Whether the packet is complete once the peer has closed; throws what is missing if not.
    /// `buffer` holds the bytes received but not consumed.
    public func finish(leftover buffer: ByteBuffer) throws(UWSGIError) {
        switch state {
        case .header:
            if buffer.readableBytes > 0 { throw .truncatedHeader(received: buffer.readableBytes) }
        case .vars(let header):
            throw .truncatedVars(expected: Int(header.datasize), received: buffer.readableBytes)
        case .body(_, 0):
            return
        case .body(let expected, let remaining):
            throw .truncatedBody(expected: expected, received: expected - remaining)
        case .done:
            return
        }
    }

    /// An HTTP request line starts with an ASCII method; a uwsgi header starts with modifier1 = 0.
    static func recogniseHTTP(_ buffer: ByteBuffer) -> UWSGIError? {
        guard buffer.readableBytes >= 4, let first4 = buffer.getBytes(at: buffer.readerIndex, length: 4) else {
            return nil
        }
        for candidate in UWSGIPacket.httpPrefixes where candidate.prefix == first4 {
            return .httpRequestOnUWSGISocket(method: candidate.method)
        }
        return nil
    }
}
