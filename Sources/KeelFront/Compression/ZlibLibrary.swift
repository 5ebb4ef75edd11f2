import CCompressZlib

/// The zlib gzip runs on (the shared library's own answer).
public enum ZlibLibrary {
    public static var version: String { String(cString: zlibVersion()) }
}
