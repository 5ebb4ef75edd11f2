import NIOCore
import TOMLKit

/// Parsers for the value formats keel.toml and keel's flags share: nginx-style sizes and durations, server addresses
/// and listen addresses. Each throws a message that says what was expected; the caller adds the key.
public enum ConfigValues {
    /// An nginx size: bytes ("512"), or with a case-insensitive suffix k, m or g (powers of 1024): "16k", "1m", "2g".
    public static func size(_ text: String) throws(ConfigValueError) -> Int64 {
        let invalid = ConfigValueError("expected a size like \"512\", \"16k\", \"1m\" or \"2g\", got \"\(text)\"")
        let lowered = text.lowercased()
        let multiplier: Int64
        let digits: Substring
        switch lowered.last {
        case "k": (multiplier, digits) = (1 << 10, lowered.dropLast())
        case "m": (multiplier, digits) = (1 << 20, lowered.dropLast())
        case "g": (multiplier, digits) = (1 << 30, lowered.dropLast())
        default: (multiplier, digits) = (1, Substring(lowered))
        }
        guard !digits.isEmpty, digits.allSatisfy(isASCIIDigit) else { throw invalid }
        guard let count = Int64(digits) else { throw ConfigValueError("size \"\(text)\" is too large") }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: multiplier)
        if overflow { throw ConfigValueError("size \"\(text)\" is too large") }
        return bytes
    }

    /// An nginx duration: "500ms", "30s", "5m", "1h", "1d", or a plain number of seconds ("30").
    public static func duration(_ text: String) throws(ConfigValueError) -> TimeAmount {
        let invalid = ConfigValueError(
            "expected a duration like \"500ms\", \"30s\", \"5m\", \"1h\" or \"1d\", got \"\(text)\"")
        let lowered = text.lowercased()
        let digits = lowered.prefix(while: isASCIIDigit)
        let unit = lowered.dropFirst(digits.count)
        let nanosecondsPerUnit: Int64
        switch unit {
        case "ms": nanosecondsPerUnit = 1_000_000
        case "", "s": nanosecondsPerUnit = 1_000_000_000
        case "m": nanosecondsPerUnit = 60 * 1_000_000_000
        case "h": nanosecondsPerUnit = 3600 * 1_000_000_000
        case "d": nanosecondsPerUnit = 86400 * 1_000_000_000
        default: throw invalid
        }
        guard !digits.isEmpty else { throw invalid }
        guard let count = Int64(digits) else { throw ConfigValueError("duration \"\(text)\" is too long") }
        let (nanoseconds, overflow) = count.multipliedReportingOverflow(by: nanosecondsPerUnit)
        if overflow { throw ConfigValueError("duration \"\(text)\" is too long") }
        return .nanoseconds(nanoseconds)
    }

    /// A backend server: "unix:/run/app.sock", "/run/app.sock", "HOST:PORT", "[::1]:PORT";
    /// with `allowHTTP` also "http://HOST[:PORT][/]" (port 80 by default), the form proxy upstreams are written in.
    public static func serverAddress(
        _ text: String, allowHTTP: Bool = false
    ) throws(ConfigValueError) -> FrontConfiguration.ServerAddress {
        if text.isEmpty { throw ConfigValueError("empty address: give unix:/path.sock or HOST:PORT") }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            if path.isEmpty { throw ConfigValueError("\"\(text)\": give the socket's path after unix:") }
            return .unix(path: path)
        }
        if text.hasPrefix("/") { return .unix(path: text) }
        var rest = Substring(text)
        var defaultPort: Int?
        if text.lowercased().hasPrefix("http://") {
            guard allowHTTP else {
                throw ConfigValueError(
                    "\"\(text)\": http:// is for proxy routes; a uwsgi server is unix:/path.sock or HOST:PORT")
            }
            rest = rest.dropFirst(7)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            if rest.contains("/") { throw ConfigValueError("\"\(text)\": give http://HOST:PORT without a path") }
            defaultPort = 80
        } else if text.contains("://") {
            throw ConfigValueError(
                "\"\(text)\": unsupported scheme; use http://HOST:PORT, HOST:PORT or unix:/path.sock")
        }
        let (host, port) = try hostAndPort(rest, original: text)
        if host.isEmpty { throw ConfigValueError("\"\(text)\": missing host; write HOST:PORT such as 127.0.0.1:9000") }
        guard let port = port ?? defaultPort else {
            throw ConfigValueError("\"\(text)\": missing port; write HOST:PORT such as 127.0.0.1:9000")
        }
        return .tcp(host: host, port: port)
    }

    /// Where keel listens, as nginx `listen`: "HOST:PORT", "[::1]:PORT", ":PORT", "*:PORT" or "PORT"
    /// (no host = all IPv4 interfaces, "0.0.0.0").
    public static func listener(_ text: String) throws(ConfigValueError) -> FrontConfiguration.Listener {
        if !text.isEmpty, text.allSatisfy(isASCIIDigit) { return try listener(port: Int(text) ?? -1) }
        let (host, port) = try hostAndPort(Substring(text), original: text)
        guard let port else {
            throw ConfigValueError("\"\(text)\": missing port; write HOST:PORT, :PORT or PORT such as 127.0.0.1:8080")
        }
        return FrontConfiguration.Listener(host: host.isEmpty || host == "*" ? "0.0.0.0" : host, port: port)
    }

    /// `listen = 8080`: a port on all IPv4 interfaces.
    public static func listener(port: Int) throws(ConfigValueError) -> FrontConfiguration.Listener {
        guard (1...65535).contains(port) else { throw ConfigValueError("port \(port): use a port from 1 to 65535") }
        return FrontConfiguration.Listener(host: "0.0.0.0", port: port)
    }

    /// The address keel connects to for a keel-pool `--socket` value, read the way keel-pool reads it (a `/` or a
    /// `.sock` suffix means a unix path); a wildcard bind host ("", "0.0.0.0", "*", "::") is reached over loopback.
    static func poolSocketAddress(_ text: String) throws(ConfigValueError) -> FrontConfiguration.ServerAddress {
        if text.hasPrefix("unix:") || text.contains("/") || text.hasSuffix(".sock") {
            let path = text.hasPrefix("unix:") ? String(text.dropFirst(5)) : text
            if path.isEmpty { throw ConfigValueError("\"\(text)\": give the socket's path after unix:") }
            return .unix(path: path)
        }
        let (host, port) = try hostAndPort(Substring(text), original: text)
        guard let port else { throw ConfigValueError("\"\(text)\": expected a unix socket path or HOST:PORT") }
        switch host {
        case "", "*", "0.0.0.0": return .tcp(host: "127.0.0.1", port: port)
        case "::": return .tcp(host: "::1", port: port)
        default: return .tcp(host: host, port: port)
        }
    }

    /// Splits "HOST:PORT", "[V6]:PORT", ":PORT" or "HOST" (port nil); the port must be 1...65535.
    private static func hostAndPort(
        _ text: Substring, original: String
    ) throws(ConfigValueError) -> (host: String, port: Int?) {
        let host: Substring
        let portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ConfigValueError("\"\(original)\": missing \"]\" after the IPv6 address")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else {
                throw ConfigValueError("\"\(original)\": expected :PORT after the IPv6 address, e.g. [::1]:8080")
            }
            portText = after.isEmpty ? nil : after.dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            if host.contains(":") {
                throw ConfigValueError("\"\(original)\": write an IPv6 address in brackets, e.g. [::1]:8080")
            }
            portText = text[text.index(after: colon)...]
        } else {
            (host, portText) = (text, nil)
        }
        if host.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ConfigValueError("\"\(original)\": \"\(host)\" is not a host name or IP address")
        }
        guard let portText else { return (String(host), nil) }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(isASCIIDigit),
            let port = Int(portText), (1...65535).contains(port)
        else {
            throw ConfigValueError("\"\(original)\": the port must be a number from 1 to 65535")
        }
        return (String(host), port)
    }

    private static func isASCIIDigit(_ character: Character) -> Bool { character.isASCII && character.isWholeNumber }

    /// `[upstream.NAME]` names: letters, digits, "_" and "-". Anything else in a route is read as an address.
    static func isUpstreamName(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy(isNameScalar)
    }

    private static func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-": true
        default: false
        }
    }

    /// ` (did you mean "x"?)` for the closest candidate within edit distance 2, else "".
    static func didYouMean(_ text: String, among candidates: some Sequence<String>) -> String {
        let scored = candidates.map { (candidate: $0, distance: editDistance(text, $0)) }
        guard let best = scored.filter({ $0.distance <= 2 }).min(by: { $0.distance < $1.distance }) else { return "" }
        return " (did you mean \"\(best.candidate)\"?)"
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ lhs: String, _ rhs: String) -> Int {
        let lhs = Array(lhs)
        let rhs = Array(rhs)
        if lhs.isEmpty || rhs.isEmpty { return max(lhs.count, rhs.count) }
        var previous = Array(0...rhs.count)
        var current = [Int](repeating: 0, count: rhs.count + 1)
        for i in 1...lhs.count {
            current[0] = i
            for j in 1...rhs.count {
                let substitution = previous[j - 1] + (lhs[i - 1] == rhs[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[rhs.count]
    }
}

/// One TOML table being read: typed getters that turn a wrong type into a `ConfigError` naming the dotted key.
struct ConfigTable {
    let table: TOMLTable
    /// Dotted path of this table ("" for the document, "limits", "route[2]").
    let path: String
    let file: String

    init(_ table: TOMLTable, path: String, file: String) {
        self.table = table
        self.path = path
        self.file = file
    }

    func keyPath(_ key: String) -> String {
        if key.isEmpty { return path }
        return path.isEmpty ? key : "\(path).\(key)"
    }

    func problem(_ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, key: keyPath(key), message: message)
    }

    func rejectUnknownKeys(_ known: [String]) throws(ConfigError) {
        for key in table.keys where !known.contains(key) {
            let suggestion = ConfigValues.didYouMean(key, among: known)
            throw problem(
                key, suggestion.isEmpty ? "unknown key; known keys here: \(known.joined(separator: ", "))"
                    : "unknown key\(suggestion)")
        }
    }

    func string(_ key: String, example: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else { throw typeMismatch(key, value, expected: "a string like \(example)") }
        return text
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let flag = value.bool else { throw typeMismatch(key, value, expected: "true or false") }
        return flag
    }

    func int(_ key: String, example: String) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let number = value.int else { throw typeMismatch(key, value, expected: "an integer like \(example)") }
        return number
    }

    /// A size string ("16k") or an integer number of bytes.
    func size(_ key: String) throws(ConfigError) -> Int64? {
        guard let value = table[key] else { return nil }
        if let bytes = value.int {
            guard bytes >= 0 else { throw problem(key, "a size cannot be negative, got \(bytes)") }
            return Int64(bytes)
        }
        guard let text = value.string else {
            throw typeMismatch(key, value, expected: "a size like \"16k\" or a number of bytes")
        }
        do throws(ConfigValueError) {
            return try ConfigValues.size(text)
        } catch {
            throw problem(key, error.message)
        }
    }

    /// A duration string ("30s") or an integer number of seconds.
    func duration(_ key: String) throws(ConfigError) -> TimeAmount? {
        guard let value = table[key] else { return nil }
        if let seconds = value.int {
            guard seconds >= 0 else { throw problem(key, "a duration cannot be negative, got \(seconds)") }
        }
        guard let text = value.string ?? value.int.map(String.init) else {
            throw typeMismatch(key, value, expected: "a duration like \"30s\" or a number of seconds")
        }
        do throws(ConfigValueError) {
            return try ConfigValues.duration(text)
        } catch {
            throw problem(key, error.message)
        }
    }

    /// A string or an array of strings, each with its own key ("host" or "host[1]").
    func strings(_ key: String, example: String) throws(ConfigError) -> [(key: String, value: String)]? {
        guard let value = table[key] else { return nil }
        if let text = value.string { return [(key, text)] }
        guard let array = value.array else {
            throw typeMismatch(key, value, expected: "a string like \(example) or an array of them")
        }
        var result: [(key: String, value: String)] = []
        for (index, element) in array.enumerated() {
            guard let text = element.string else {
                throw typeMismatch("\(key)[\(index)]", element, expected: "a string like \(example)")
            }
            result.append(("\(key)[\(index)]", text))
        }
        return result
    }

    /// An array of strings only (a single string is an error, as it is for argument lists).
    func stringArray(_ key: String, example: String) throws(ConfigError) -> [String] {
        guard let value = table[key] else { return [] }
        guard value.array != nil, let entries = try strings(key, example: "\"--socket\"") else {
            throw typeMismatch(key, value, expected: "an array of strings like \(example)")
        }
        return entries.map(\.value)
    }

    func table(_ key: String) throws(ConfigError) -> ConfigTable? {
        guard let value = table[key] else { return nil }
        guard let nested = value.table else { throw typeMismatch(key, value, expected: "a table [\(keyPath(key))]") }
        return ConfigTable(nested, path: keyPath(key), file: file)
    }

    /// An array of tables (`[[route]]`), each with its own key ("route[0]").
    func tables(_ key: String, example: String) throws(ConfigError) -> [ConfigTable]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw typeMismatch(key, value, expected: "tables written \(example)") }
        var result: [ConfigTable] = []
        for (index, element) in array.enumerated() {
            let elementKey = "\(key)[\(index)]"
            guard let nested = element.table else {
                throw typeMismatch(elementKey, element, expected: "a table written \(example)")
            }
            result.append(ConfigTable(nested, path: keyPath(elementKey), file: file))
        }
        return result
    }

    private func typeMismatch(_ key: String, _ value: any TOMLValueConvertible, expected: String) -> ConfigError {
        problem(key, "expected \(expected), got \(Self.describe(value))")
    }

    /// How a value reads in an error: `the string "x"`, `the integer 3`, `an array`.
    static func describe(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "the string \"\(value.string ?? "")\""
        case .int: "the integer \(value.int ?? 0)"
        case .double: "the number \(value.double ?? 0)"
        case .bool: "\(value.bool ?? false)"
        case .table: "a table"
        case .array: "an array"
        default: "a \(value.type)"
        }
    }
}
