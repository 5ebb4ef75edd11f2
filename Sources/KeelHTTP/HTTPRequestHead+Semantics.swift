import NIOHTTP1

extension HTTPRequestHead {
    /// The client announced a body (possibly empty): its length is passed on even when it is 0.
    public var declaresBody: Bool {
        headers.contains(name: "content-length") || headers.contains(name: "transfer-encoding")
    }

    /// The client waits for a 100 before sending its body. Only an HTTP/1.1 client: a server must ignore an
    /// HTTP/1.0 client's expectation (RFC 9110 §10.1.1). Other expectations are ignored, as nginx does.
    public var expectsContinue: Bool {
        guard version.major == 1, version.minor >= 1 else { return false }
        guard let expect = headers.first(name: "expect") else { return false }
        return expect.isASCIICaseInsensitiveEqual("100-continue")
    }
}

/// Whether a connection stays open after a response, and the `Connection` header that says so, for both servers.
public enum ConnectionPersistence {
    /// The request allows another on its connection (RFC 9112 §9.3): HTTP/1.1 unless it says "close", HTTP/1.0
    /// only when it says "keep-alive".
    public static func requested(by head: HTTPRequestHead) -> Bool { head.isKeepAlive }

    /// A response the client can only see end by the close (HTTP/1.0, no Content-Length, a body) ends the
    /// connection however much the request wanted it kept.
    public static func keepsAlive(
        requested: Bool, requestVersion: HTTPVersion, isHeadRequest: Bool, responseHasLength: Bool
    ) -> Bool {
        requested && (responseHasLength || isHeadRequest || requestVersion.major > 1 || requestVersion.minor >= 1)
    }

    /// "close" when the connection ends after this response; "keep-alive" for an HTTP/1.0 client that keeps it
    /// (its default is to close); nothing for HTTP/1.1's default.
    public static func setConnectionHeader(_ headers: inout HTTPHeaders, version: HTTPVersion, keepAlive: Bool) {
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
    }
}
