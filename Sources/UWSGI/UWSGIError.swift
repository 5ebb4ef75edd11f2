/// Everything that can be wrong with a uwsgi packet, each with the fix in its description.
public enum UWSGIError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed after 1–3 bytes: not even a whole 4-byte header.
    case truncatedHeader(received: Int)
    /// The peer closed inside the var block.
    case truncatedVars(expected: Int, received: Int)
    /// The peer closed before sending CONTENT_LENGTH bytes of body.
    case truncatedBody(expected: Int, received: Int)
    /// Encoding only: the vars do not fit the 16-bit datasize.
    case varBlockTooLarge(size: Int)
    /// Encoding only: one key or value is longer than a 16-bit length can say.
    case varTooLarge(name: String, size: Int)
    /// A key or value length points past the end of the var block.
    case varOverrunsBlock(offset: Int, blockSize: Int)
    /// CONTENT_LENGTH is not a non-negative decimal integer.
    case invalidContentLength(String)
    /// modifier1 names a protocol this server does not speak.
    case unsupportedModifier1(UInt8)
    /// The first bytes are an HTTP request line: an HTTP client was pointed at a uwsgi socket.
    case httpRequestOnUWSGISocket(method: String)

    /// Text from the wire, escaped and shortened so a log record stays one line.
    static func quoted(_ text: String) -> String {
        let short = text.unicodeScalars.count > 64 ? String(text.unicodeScalars.prefix(64)) + "…" : text
        return short.debugDescription
    }

    public var description: String {
        switch self {
        case .truncatedHeader(let received):
            return "uwsgi packet truncated: connection closed after \(received) of 4 header bytes"
        case .truncatedVars(let expected, let received):
            return "uwsgi packet truncated: connection closed after \(received) of \(expected) var-block bytes"
        case .truncatedBody(let expected, let received):
            return "uwsgi request body truncated: got \(received) of CONTENT_LENGTH \(expected) bytes"
        case .varBlockTooLarge(let size):
            return "uwsgi var block is \(size) bytes, over the protocol's 65535: send fewer or shorter headers"
        case .varTooLarge(let name, let size):
            return "uwsgi var \(Self.quoted(name)) is \(size) bytes, over the protocol's 65535 per key or value"
        case .varOverrunsBlock(let offset, let blockSize):
            return "malformed uwsgi packet: a var at offset \(offset) runs past the \(blockSize)-byte var block"
        case .invalidContentLength(let value):
            return "malformed uwsgi packet: CONTENT_LENGTH \(Self.quoted(value)) is not a non-negative integer"
        case .unsupportedModifier1(let modifier):
            return "unsupported uwsgi modifier1 \(modifier): only 0 (WSGI/HTTP vars, what nginx uwsgi_pass sends) is served"
        case .httpRequestOnUWSGISocket(let method):
            return "an HTTP request (\(method) ...) arrived on a uwsgi socket: point HTTP clients at --http-socket, "
                + "or put nginx/keel with uwsgi_pass in front"
        }
    }
}
