/// %XX decoding of a request path as the app servers need it: lenient (an invalid escape stays as it is;
/// answering 400 is the front's stricter choice), and the bytes read as UTF-8 when valid, else latin-1 (one
/// character per byte). Shared by the HTTP socket's PATH_INFO and WSGI's raw-path recovery.
public enum PercentDecoding {
    /// The path with every valid %XX escape replaced by its byte.
    public static func bytes<Bytes: Collection<UInt8>>(_ path: Bytes) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.count)
        var rest = Array(path)[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "%"), rest.count >= 2, let high = hexValue(rest[rest.startIndex]),
                let low = hexValue(rest[rest.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                rest.removeFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return bytes
    }

    /// Decoded bytes as text: UTF-8 when they are valid UTF-8, else latin-1.
    public static func text(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return String(bytes.map { Character(Unicode.Scalar($0)) })
    }

    /// `bytes` then `text`; a path without "%" is returned as it is.
    public static func decode(_ path: Substring) -> String {
        guard path.utf8.contains(UInt8(ascii: "%")) else { return String(path) }
        return text(bytes(path.utf8))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
