import KeelWSGI

/// The embedded libpython's version, for `keel version` (keel's own target cannot import CPython beside OpenSSL).
public enum LinkedPython {
    public static var version: String { EmbeddedPython.version }
}
