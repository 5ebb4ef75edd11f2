import NIOCore

/// Receives a streamed response body chunk by chunk; `write` returns once the chunk is handed on
/// (and throws when the client has gone, so the app can stop producing).
public protocol BodyWriter {
    func write(_ bytes: ByteBuffer) throws
}

public enum ResponseBody: Sendable {
    /// A body known in full: sent with Content-Length.
    case bytes(ByteBuffer)
    /// A body produced as it goes: chunked on HTTP/1.1, close-delimited on uwsgi sockets.
    case stream(@Sendable (any BodyWriter) throws -> Void)
}

public struct Response: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: ResponseBody

    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: ResponseBody) {
        self.status = status
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
