/// The WSGI status string `NNN Reason` (PEP 3333): three digits, a space, a reason without control
/// characters. Anything else is the app's error, answered with a 500.
enum StatusLine {
    static func code(of status: String) -> Int? {
        let bytes = Array(status.utf8)
        guard bytes.count >= 4, bytes[3] == UInt8(ascii: " "),
            bytes[0..<3].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            !bytes[4...].contains(where: { $0 < 0x20 || $0 == 0x7f })
        else { return nil }
        let code = bytes[0..<3].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return code >= 100 ? code : nil
    }
}
