/// %XX decoding of a request path, the one both servers (PATH_INFO, static files) and WSGI's raw-path recovery use.
/// Strict as nginx's URI parser is: a malformed escape makes the whole path undecodable (nil), never half-decoded.
public enum PercentDecoding {
    /// The path's bytes with every %XX replaced by its byte; nil for a malformed escape ("%zz", a trailing "%4").
    public static func bytes<Bytes: Collection<UInt8>>(_ path: Bytes) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.count)
        var iterator = path.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// Decoded bytes as text: UTF-8 when they are valid UTF-8, else latin-1 (one character per byte), which is how
    /// keel-pool's uwsgi reader takes nginx's raw PATH_INFO bytes too.
    public static func text(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var latin1 = String.UnicodeScalarView()
        for byte in bytes { latin1.append(Unicode.Scalar(byte)) }
        return String(latin1)
    }

    /// PATH_INFO of a raw path: decoded, or the path as it is when an escape is malformed or decodes to NUL (a
    /// NUL would end the path early in any C consumer).
    public static func pathInfo(_ path: Substring) -> String {
        guard path.utf8.contains(UInt8(ascii: "%")) else { return String(path) }
        guard let bytes = bytes(path.utf8), !bytes.contains(0) else { return String(path) }
        return text(bytes)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
