import KeelHTTP

/// PATH_INFO's bytes as the client sent them. The worker's vars are text (UTF-8 when the bytes were
/// valid UTF-8, latin-1 otherwise), which cannot say which it was for a path such as `/café/%FF`;
/// PEP 3333 wants the raw bytes as latin-1, so they are taken from REQUEST_URI when it agrees.
enum RawPath {
    /// The percent-decoded path of `requestURI` when it decodes to `pathInfo`; nil when the var is
    /// ASCII (nothing to recover) or the front rewrote PATH_INFO (the var is then used as it is).
    static func bytes(of pathInfo: String, requestURI: String?) -> [UInt8]? {
        guard let requestURI, pathInfo.utf8.contains(where: { $0 >= 0x80 }) else { return nil }
        let path = requestURI.utf8.prefix { $0 != UInt8(ascii: "?") }
        guard let raw = PercentDecoding.bytes(path) else { return nil }
        return PercentDecoding.text(raw) == pathInfo ? raw : nil
    }
}
