/// PATH_INFO's bytes as the client sent them. The worker's vars are text (UTF-8 when the bytes were
/// valid UTF-8, latin-1 otherwise), which cannot say which it was for a path such as `/café/%FF`;
/// PEP 3333 wants the raw bytes as latin-1, so they are taken from REQUEST_URI when it agrees.
enum RawPath {
    /// The percent-decoded path of `requestURI` when it decodes to `pathInfo`; nil when the var is
    /// ASCII (nothing to recover) or the front rewrote PATH_INFO (the var is then used as it is).
    static func bytes(of pathInfo: String, requestURI: String?) -> [UInt8]? {
        guard let requestURI, pathInfo.utf8.contains(where: { $0 >= 0x80 }) else { return nil }
        let path = requestURI.utf8.prefix { $0 != UInt8(ascii: "?") }
        let raw = percentDecoded(path)
        let asText = String(validating: raw, as: UTF8.self) ?? String(raw.map { Character(Unicode.Scalar($0)) })
        return asText == pathInfo ? raw : nil
    }

    static func percentDecoded<Bytes: Collection<UInt8>>(_ path: Bytes) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.count)
        var rest = Array(path)[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "%"), rest.count >= 2, let high = hex(rest[rest.startIndex]),
                let low = hex(rest[rest.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                rest.removeFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return bytes
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
