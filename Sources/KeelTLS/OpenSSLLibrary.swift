internal import COpenSSL

/// The OpenSSL keel runs on (the shared library's own answer, not the headers it was built with).
public enum OpenSSLLibrary {
    public static var version: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }
}
