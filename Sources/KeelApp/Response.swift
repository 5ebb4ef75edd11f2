#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// Receives a streamed response body chunk by chunk; `write` returns once the chunk is handed on
/// (and throws when the client has gone, so the app can stop producing).
public protocol BodyWriter {
    func write(_ bytes: ByteBuffer) throws
}

/// A body writer that is also told the head, for apps that only know it once they produce their
/// first bytes (WSGI's `write()` callable, a generator's first chunk).
public protocol ResponseWriter: BodyWriter {
    /// Sends the status line and headers: a declared Content-Length is kept, otherwise the body is
    /// framed (chunked, or ended by the close). Throws, sending nothing, on an invalid head.
    func writeHead(status: Int, reason: String?, headers: [(name: String, value: String)]) throws
}

public enum ResponseBody: Sendable {
    /// A body known in full: sent with Content-Length.
    case bytes(ByteBuffer)
    /// A body produced as it goes: chunked on HTTP/1.1, close-delimited on uwsgi sockets.
    case stream(@Sendable (any BodyWriter) throws -> Void)
    /// A region of an open file, sent with sendfile(2) (a FileRegion on HTTP sockets).
    case file(ResponseFile)
    /// The producer sends the head itself through `writeHead` before any body bytes, then returns
    /// nil; or it sends nothing and returns the response to send instead. The outer status and
    /// headers are not used.
    case deferred(@Sendable (any ResponseWriter) throws -> Response?)
}

/// An open file descriptor a response sends from; closed (and `onDone` called) when the response
/// drops it, sent or not.
public final class ResponseFile: Sendable {
    public let descriptor: Int32
    public let offset: Int
    public let length: Int
    private let onDone: (@Sendable () -> Void)?

    /// Takes ownership of `descriptor`.
    public init(descriptor: Int32, offset: Int, length: Int, onDone: (@Sendable () -> Void)? = nil) {
        self.descriptor = descriptor
        self.offset = offset
        self.length = length
        self.onDone = onDone
    }

    deinit {
        close(descriptor)
        onDone?()
    }
}

public struct Response: Sendable {
    public var status: Int
    /// The reason phrase as the app gave it; nil sends the standard one for `status`.
    public var reason: String?
    public var headers: [(name: String, value: String)]
    public var body: ResponseBody

    public init(
        status: Int = 200, reason: String? = nil, headers: [(name: String, value: String)] = [], body: ResponseBody
    ) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    /// A text response with Content-Type set.
    public init(status: Int = 200, contentType: String = "text/plain", _ text: String) {
        self.init(
            status: status, headers: [("Content-Type", contentType)], body: .bytes(ByteBuffer(string: text)))
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        for h in headers where h.name.lowercased() == lower { return h.value }
        return nil
    }
}

/// An error that the app wants shown to the client with a given status (the rest become 500).
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { "\(status): \(message)" }
}
