/// Byte-level ASCII helpers for the request path: no Foundation, no lowercased copies.
enum ASCIIText {
    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// Whether `text` contains an uppercase ASCII letter (most hosts and types do not: no copy then).
    static func hasUppercase(_ text: Substring) -> Bool {
        text.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }

    /// `text` in lowercase, copied only when it has uppercase letters.
    static func lowercased(_ text: Substring) -> String {
        hasUppercase(text) ? String(decoding: text.utf8.map(lower), as: UTF8.self) : String(text)
    }

    /// `a` equals `b` ignoring ASCII case; `b` is already lowercase.
    static func equalsLowercase<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { lower($0) == $1 }
    }
}
