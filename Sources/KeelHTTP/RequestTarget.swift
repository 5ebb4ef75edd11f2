/// A request line's target split once (RFC 9112 §3.2): the path still percent-encoded, the query, and for the
/// absolute form its authority. Both servers route, log and build CGI vars from it; no Foundation, no copies of
/// the target except where the absolute form has no path.
public struct RequestTarget: Sendable, Equatable {
    public enum Form: Sendable, Equatable {
        /// `/path?query`
        case origin
        /// `http://host:port/path?query`: the authority wins over the Host header (RFC 9112 §3.2.2).
        case absolute
        /// `*`, for a server-wide OPTIONS.
        case asterisk
        /// `host:port`, only CONNECT's.
        case authority
    }

    public var form: Form
    /// The target in origin form (`/path?query`): what nginx's `$request_uri` and REQUEST_URI show.
    public var originForm: Substring
    /// The path of `originForm`, still percent-encoded ("*" for the asterisk form, "" for the authority form).
    public var path: Substring
    /// The query without its "?", or "".
    public var query: Substring
    /// The absolute form's (or CONNECT's) `host[:port]`; nil for the other forms.
    public var authority: Substring?

    /// Splits `uri`; nil for a target that is none of the four forms or whose authority is malformed (userinfo,
    /// a stray bracket, a non-numeric port), which nginx answers with 400.
    public init?(parsing uri: String) {
        let target = Substring(uri)
        guard let first = target.utf8.first else { return nil }
        if first == UInt8(ascii: "/") {
            self.init(form: .origin, originForm: target, authority: nil)
        } else if target == "*" {
            self.init(form: .asterisk, originForm: target, authority: nil)
        } else if let afterScheme = Self.afterScheme(target) {
            let pathStart = afterScheme.utf8.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }
            let authority = afterScheme[..<(pathStart ?? afterScheme.endIndex)]
            guard Self.isValidAuthority(authority) else { return nil }
            var rest = afterScheme[(pathStart ?? afterScheme.endIndex)...]
            // "http://h" and "http://h?x" have an empty path, which is "/" (RFC 9112 §3.2.1).
            if rest.utf8.first != UInt8(ascii: "/") { rest = Substring("/" + rest) }
            self.init(form: .absolute, originForm: rest, authority: authority)
        } else if Self.isValidAuthority(target) {
            self.init(form: .authority, originForm: "", authority: target)
        } else {
            return nil
        }
    }

    private init(form: Form, originForm: Substring, authority: Substring?) {
        self.form = form
        self.originForm = originForm
        self.authority = authority
        if let question = originForm.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = originForm[..<question]
            query = originForm[originForm.index(after: question)...]
        } else {
            path = originForm
            query = ""
        }
    }

    /// What follows `scheme://`, the scheme being RFC 3986's `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
    private static func afterScheme(_ target: Substring) -> Substring? {
        let utf8 = target.utf8
        var index = utf8.startIndex
        guard index < utf8.endIndex, isAlpha(utf8[index]) else { return nil }
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: ":") { break }
            guard isAlpha(byte) || isDigit(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: ".")
            else { return nil }
            utf8.formIndex(after: &index)
        }
        let rest = target[index...]
        guard rest.utf8.starts(with: "://".utf8) else { return nil }
        return rest.dropFirst(3)
    }

    /// `host [":" port]` with host an IP literal in brackets or RFC 3986's reg-name (so no "@" of a userinfo, no
    /// stray "]"), port digits. The ".." and control-byte rules of the Host header apply on top (`HostHeader`).
    static func isValidAuthority(_ authority: Substring) -> Bool {
        let utf8 = authority.utf8
        guard let first = utf8.first else { return false }
        var index = utf8.startIndex
        if first == UInt8(ascii: "[") {
            utf8.formIndex(after: &index)
            while index < utf8.endIndex, utf8[index] != UInt8(ascii: "]") {
                let byte = utf8[index]
                guard isHexDigit(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") else { return false }
                utf8.formIndex(after: &index)
            }
            guard index < utf8.endIndex, utf8.distance(from: utf8.startIndex, to: index) > 1 else { return false }
            utf8.formIndex(after: &index)
        } else {
            while index < utf8.endIndex, utf8[index] != UInt8(ascii: ":") {
                guard isRegNameByte(utf8[index]) else { return false }
                utf8.formIndex(after: &index)
            }
            guard index > utf8.startIndex else { return false }
        }
        guard index < utf8.endIndex else { return HostHeader.isValid(authority) }
        guard utf8[index] == UInt8(ascii: ":") else { return false }
        utf8.formIndex(after: &index)
        while index < utf8.endIndex {
            guard isDigit(utf8[index]) else { return false }
            utf8.formIndex(after: &index)
        }
        return HostHeader.isValid(authority)
    }

    /// RFC 3986 reg-name: unreserved, pct-encoded and sub-delims.
    private static func isRegNameByte(_ byte: UInt8) -> Bool {
        if isAlpha(byte) || isDigit(byte) { return true }
        switch byte {
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    private static func isAlpha(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
    }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || ((byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "f"))
    }
}

/// nginx's check of a Host value (`ngx_http_validate_host`, roughly): not empty, no whitespace, slashes or control
/// bytes, no ".." label.
public enum HostHeader {
    public static func isValid<S: StringProtocol>(_ host: S) -> Bool {
        guard !host.isEmpty else { return false }
        var previousWasDot = false
        for byte in host.utf8 {
            if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") { return false }
            let isDot = byte == UInt8(ascii: ".")
            if isDot && previousWasDot { return false }
            previousWasDot = isDot
        }
        return true
    }
}
