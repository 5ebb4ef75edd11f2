import NIOCore

/// One uwsgi var: a name (`REQUEST_METHOD`, `HTTP_HOST`, …) and its value.
public typealias UWSGIVar = (name: String, value: String)

/// The fixed 4-byte header that starts every uwsgi packet.
public struct UWSGIPacketHeader: Equatable, Sendable {
    public var modifier1: UInt8
    public var datasize: UInt16
    public var modifier2: UInt8

    public init(modifier1: UInt8 = 0, datasize: UInt16, modifier2: UInt8 = 0) {
        self.modifier1 = modifier1
        self.datasize = datasize
        self.modifier2 = modifier2
    }
}

/// A decoded request packet: header fields, vars in wire order, and the announced body length.
public struct UWSGIRequestHead: Sendable {
    public var modifier1: UInt8
    public var modifier2: UInt8
    public var vars: [UWSGIVar]
    /// CONTENT_LENGTH, or 0 when absent or empty (nginx sends an empty value for body-less requests).
    public var contentLength: Int

    public init(modifier1: UInt8 = 0, modifier2: UInt8 = 0, vars: [UWSGIVar], contentLength: Int) {
        self.modifier1 = modifier1
        self.modifier2 = modifier2
        self.vars = vars
        self.contentLength = contentLength
    }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        for v in vars where v.name == name { return v.value }
        return nil
    }
}

public enum UWSGIPacket {
    /// Largest var block the 16-bit datasize can announce.
    public static let maxVarBlockSize = 65_535

    /// Appends the header and var block of a request packet to `buffer` (the body follows separately).
    /// Validates sizes first so nothing is written for a packet that cannot be sent.
    public static func writeRequestHead(
        vars: [UWSGIVar],
        modifier1: UInt8 = 0,
        modifier2: UInt8 = 0,
        into buffer: inout ByteBuffer
    ) throws(UWSGIError) {
        var size = 0
        for v in vars {
            let nameCount = v.name.utf8.count
            let valueCount = v.value.utf8.count
            if nameCount > 65_535 { throw .varTooLarge(name: String(v.name.prefix(40)), size: nameCount) }
            if valueCount > 65_535 { throw .varTooLarge(name: v.name, size: valueCount) }
            size += 4 + nameCount + valueCount
        }
        if size > maxVarBlockSize { throw .varBlockTooLarge(size: size) }
        buffer.reserveCapacity(minimumWritableBytes: 4 + size)
        buffer.writeInteger(modifier1)
        buffer.writeInteger(UInt16(size), endianness: .little)
        buffer.writeInteger(modifier2)
        for v in vars {
            buffer.writeInteger(UInt16(v.name.utf8.count), endianness: .little)
            buffer.writeString(v.name)
            buffer.writeInteger(UInt16(v.value.utf8.count), endianness: .little)
            buffer.writeString(v.value)
        }
    }

    /// Parses a CONTENT_LENGTH value: empty means 0 (as nginx sends it); anything but ASCII digits is an error.
    public static func parseContentLength(_ value: String) throws(UWSGIError) -> Int {
        if value.isEmpty { return 0 }
        var result = 0
        for byte in value.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw .invalidContentLength(value) }
            let (times10, o1) = result.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if o1 || o2 { throw .invalidContentLength(value) }
            result = sum
        }
        return result
    }

    /// Decodes a whole var block (exactly `datasize` bytes).
    public static func parseVars(_ block: ByteBuffer) throws(UWSGIError) -> [UWSGIVar] {
        var block = block
        let blockSize = block.readableBytes
        var vars: [UWSGIVar] = []
        vars.reserveCapacity(32)
        while block.readableBytes > 0 {
            let offset = blockSize - block.readableBytes
            guard let nameLength = block.readInteger(endianness: .little, as: UInt16.self),
                let name = block.readBytesAsString(Int(nameLength)),
                let valueLength = block.readInteger(endianness: .little, as: UInt16.self),
                let value = block.readBytesAsString(Int(valueLength))
            else { throw .varOverrunsBlock(offset: offset, blockSize: blockSize) }
            vars.append((name, value))
        }
        return vars
    }

    /// HTTP methods whose first four bytes give away an HTTP client talking to a uwsgi socket.
    static let httpPrefixes: [(prefix: [UInt8], method: String)] = [
        "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PRI",
    ].map { method in (Array((method + " ").utf8.prefix(4)), method) }
}

extension ByteBuffer {
    /// Reads `length` bytes as a String; bytes that are not UTF-8 are kept one-to-one as Latin-1
    /// (nginx passes PATH_INFO percent-decoded, which may be any bytes).
    fileprivate mutating func readBytesAsString(_ length: Int) -> String? {
        guard let view = self.readSlice(length: length) else { return nil }
        return view.withUnsafeReadableBytes { raw in
            if let s = String(validating: raw, as: UTF8.self) { return s }
            return String(raw.map { Character(Unicode.Scalar($0)) })
        }
    }
}
