/// A configuration problem, pointing at the key to fix: one line, printed as is by `keel check` and at startup.
///
/// `key` is a dotted path into the TOML document with 0-based array indices, as in `upstream.app.servers[1]`,
/// `route[2].path` or `limits.send_timeout`; it is "" for problems with the whole file (unreadable, bad syntax).
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The file the configuration came from ("keel.toml", a path, or "command line").
    public var file: String
    /// Dotted path of the offending key, "" when the problem is not one key's.
    public var key: String
    /// What is wrong and how to fix it.
    public var message: String

    public init(file: String = "keel.toml", key: String, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    /// `<file>: <key>: <message>`, or `<file>: <message>` when no key applies.
    public var description: String {
        key.isEmpty ? "\(file): \(message)" : "\(file): \(key): \(message)"
    }
}

/// Why a single value could not be parsed (a size, a duration, an address); the loader adds file and key.
public struct ConfigValueError: Error, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
