import NIOCore

/// The status line and headers of a response read from a uwsgi server.
public struct UWSGIResponseHead: Sendable {
    public var versionMinor: Int
    public var status: Int
    public var reason: String
    public var headers: [(name: String, value: String)]
    /// The server asked to close after this response (`Connection: close`).
    public var closesConnection: Bool
}

/// Incremental reader of what a uwsgi server answers, for the front: an optional keel-wire frame, then an HTTP/1.x
/// response whose body is framed by Content-Length or chunked, or (classic uwsgi only) ended by the close. Only what
/// relaying needs is parsed: the status line, the headers, Content-Length, Transfer-Encoding and Connection.
/// A pure state machine over `ByteBuffer`; it is told when a request goes out, since a response to HEAD (and a 1xx,
/// 204 or 304) has no body whatever its headers say.
public struct UWSGIResponseParser: Sendable {
    public enum Event: Sendable {
        /// A keel-wire frame: the response after it is framed and the connection persists.
        case responder(KeelWire.Responder)
        case head(UWSGIResponseHead)
        case body(ByteBuffer)
        case end
        /// The server closes this connection; nothing sent after its last response was read.
        case goodbye
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case headTooLarge(limit: Int)
        case malformedStatusLine(String)
        case malformedHeader(String)
        case invalidContentLength(String)
        case unsupportedTransferEncoding(String)
        case bothLengthAndChunked
        case invalidChunk(String)
        case malformedFrame(String)
        /// A framed response with a body but neither Content-Length nor chunked.
        case unframedResponse(status: Int)
        /// Bytes where no response was asked for: a response longer than it declared, or garbage.
        case unexpectedBytes(Int)
        /// A framed-connection server answered a later request in classic form.
        case classicAfterFramed
        case truncated(String)

        static let beforeTheResponse = "before the response began"
        /// The server closed the connection without a byte of its answer.
        public var isCloseBeforeTheResponse: Bool { self == .truncated(Self.beforeTheResponse) }

        public var description: String {
            switch self {
            case .headTooLarge(let limit): "response head larger than \(limit) bytes"
            case .malformedStatusLine(let line): "malformed status line \(UWSGIError.quoted(line))"
            case .malformedHeader(let line): "malformed response header \(UWSGIError.quoted(line))"
            case .invalidContentLength(let value): "invalid Content-Length \(UWSGIError.quoted(value))"
            case .unsupportedTransferEncoding(let value): "unsupported Transfer-Encoding \(UWSGIError.quoted(value))"
            case .bothLengthAndChunked: "response has both Content-Length and Transfer-Encoding"
            case .invalidChunk(let detail): "malformed chunked body: \(detail)"
            case .malformedFrame(let detail): "malformed keel-wire frame: \(detail)"
            case .unframedResponse(let status): "framed \(status) response has neither Content-Length nor chunked"
            case .unexpectedBytes(let count): "\(count) bytes after the end of the response (longer than it declared)"
            case .classicAfterFramed: "unframed response on a persistent connection"
            case .truncated(let detail): "connection closed \(detail)"
            }
        }
    }

    private enum Body: Sendable {
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    private enum State: Sendable {
        /// No request outstanding; only a goodbye may arrive.
        case idle
        /// A request went out; a frame or (classic) a status line comes next.
        case awaitingResponse
        case head(framed: Bool)
        case body(Body, framed: Bool)
        /// The response ended; `end` is still to be returned.
        case ending(framed: Bool)
        case closed
    }

    private var state = State.idle
    private var headRequest = false
    /// Set by the first frame: from then on every response must be framed.
    public private(set) var isPersistent = false
    public let maxHeadSize: Int

    public init(maxHeadSize: Int = 64 * 1024) {
        self.maxHeadSize = maxHeadSize
    }

    /// A request was sent: its response comes next. `isHEAD`: the response has no body.
    public mutating func expectResponse(isHEAD: Bool) {
        precondition(isIdle, "a request was sent before the previous response ended")
        headRequest = isHEAD
        state = .awaitingResponse
    }

    /// Between responses (nothing asked, nothing owed).
    public var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// Consumes what it can from `buffer` and returns the next event, or nil when it needs more bytes.
    public mutating func next(_ buffer: inout ByteBuffer) throws(ParseError) -> Event? {
        switch state {
        case .closed:
            if buffer.readableBytes > 0 { throw .unexpectedBytes(buffer.readableBytes) }
            return nil
        case .idle:
            guard buffer.readableBytes > 0 else { return nil }
            // The only thing a server may send unasked is a goodbye.
            guard buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == KeelWire.frameMarker, isPersistent else {
                throw .unexpectedBytes(buffer.readableBytes)
            }
            return try readFrame(&buffer, expectingResponse: false)
        case .awaitingResponse:
            guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
            if first == KeelWire.frameMarker { return try readFrame(&buffer, expectingResponse: true) }
            if isPersistent { throw .classicAfterFramed }
            state = .head(framed: false)
            return try next(&buffer)
        case .head(let framed):
            return try readHead(&buffer, framed: framed)
        case .body(let body, let framed):
            return try readBody(body, framed: framed, &buffer)
        case .ending(let framed):
            state = framed ? .idle : .closed
            return .end
        }
    }

    /// The server closed the connection: the end of a close-delimited body, or an error if a response was cut.
    /// Returns `.end` when that close completes the response.
    public mutating func finish() throws(ParseError) -> Event? {
        defer { state = .closed }
        switch state {
        case .idle, .closed:
            return nil
        case .awaitingResponse:
            throw .truncated(ParseError.beforeTheResponse)
        case .head:
            throw .truncated("inside the response head")
        case .body(.untilClose, _):
            return .end
        case .body:
            throw .truncated("before the end of the response body")
        case .ending:
            return .end
        }
    }

    // MARK: frames

    private mutating func readFrame(_ buffer: inout ByteBuffer, expectingResponse: Bool) throws(ParseError) -> Event? {
        guard buffer.readableBytes >= 4 else { return nil }
        let start = buffer.readerIndex
        let size = Int(buffer.getInteger(at: start + 1, endianness: .little, as: UInt16.self)!)
        let kind = buffer.getInteger(at: start + 3, as: UInt8.self)!
        switch KeelWire.FrameKind(rawValue: kind) {
        case .goodbye:
            guard size == 0 else { throw .malformedFrame("goodbye with a \(size)-byte payload") }
            buffer.moveReaderIndex(forwardBy: 4)
            state = .closed
            return .goodbye
        case .response:
            guard expectingResponse else { throw .unexpectedBytes(buffer.readableBytes) }
            guard size == KeelWire.responsePayloadSize else {
                throw .malformedFrame("response frame with a \(size)-byte payload, not \(KeelWire.responsePayloadSize)")
            }
            guard buffer.readableBytes >= KeelWire.responseFrameSize else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let pid: UInt32 = buffer.readInteger(endianness: .little)!
            let capacity: UInt16 = buffer.readInteger(endianness: .little)!
            let workers: UInt16 = buffer.readInteger(endianness: .little)!
            guard capacity > 0, workers > 0 else { throw .malformedFrame("a worker with 0 threads or a pool of 0 workers") }
            isPersistent = true
            state = .head(framed: true)
            return .responder(KeelWire.Responder(pid: pid, capacity: capacity, workers: workers))
        case nil:
            throw .malformedFrame("unknown kind \(kind)")
        }
    }

    // MARK: head

    private mutating func readHead(_ buffer: inout ByteBuffer, framed: Bool) throws(ParseError) -> Event? {
        guard let headLength = Self.headLength(buffer, limit: maxHeadSize) else {
            if buffer.readableBytes >= maxHeadSize { throw .headTooLarge(limit: maxHeadSize) }
            return nil
        }
        let block = buffer.readSlice(length: headLength)!
        var lines = Self.lines(of: block)
        guard !lines.isEmpty else { throw .malformedStatusLine("") }
        let statusLine = lines.removeFirst()
        let (minor, status, reason) = try Self.parseStatusLine(statusLine)
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count)
        var contentLength: Int?
        var chunked = false
        var closes = false
        for line in lines where !line.isEmpty {
            let (name, value) = try Self.parseHeader(line)
            switch name.utf8.count {
            case 14 where name.lowercased() == "content-length":
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let trimmed = part.trimmingSpaces
                    guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), trimmed.utf8.count < 19,
                        let length = Int(trimmed), contentLength == nil || contentLength == length
                    else { throw .invalidContentLength(value) }
                    contentLength = length
                }
            case 17 where name.lowercased() == "transfer-encoding":
                let codings = value.split(separator: ",").map { $0.trimmingSpaces.lowercased() }
                guard codings == ["chunked"] else { throw .unsupportedTransferEncoding(value) }
                chunked = true
            case 10 where name.lowercased() == "connection":
                if value.split(separator: ",").contains(where: { $0.trimmingSpaces.lowercased() == "close" }) {
                    closes = true
                }
            default:
                break
            }
            headers.append((name, value))
        }
        if chunked && contentLength != nil { throw .bothLengthAndChunked }
        let head = UWSGIResponseHead(
            versionMinor: minor, status: status, reason: reason, headers: headers, closesConnection: closes)
        if status < 200 {
            // Informational: the real response follows.
            state = .head(framed: framed)
        } else if headRequest || status == 204 || status == 304 {
            state = .ending(framed: framed)
        } else if chunked {
            state = .body(.chunkSize, framed: framed)
        } else if let contentLength {
            state = contentLength == 0 ? .ending(framed: framed) : .body(.fixed(remaining: contentLength), framed: framed)
        } else if framed {
            throw .unframedResponse(status: status)
        } else {
            state = .body(.untilClose, framed: false)
        }
        return .head(head)
    }

    /// Length of the head including its blank line, if complete within `limit` bytes.
    static func headLength(_ buffer: ByteBuffer, limit: Int) -> Int? {
        buffer.withUnsafeReadableBytes { raw -> Int? in
            let count = min(raw.count, limit)
            guard count >= 4 else { return nil }
            var index = 3
            while index < count {
                let byte = raw[index]
                if byte == 10 {
                    if raw[index - 1] == 13, raw[index - 2] == 10, raw[index - 3] == 13 { return index + 1 }
                    index += 1
                } else if byte == 13 {
                    index += 1
                } else {
                    // Neither CR nor LF: the terminator cannot end within the next 3 bytes.
                    index += 4
                }
            }
            return nil
        }
    }

    /// The head's lines, without their CRLF (bare LF tolerated). Split on bytes: a String sees "\r\n" as one
    /// Character, which no "\n" matches.
    static func lines(of block: ByteBuffer) -> [Substring] {
        var lines: [Substring] = []
        block.withUnsafeReadableBytes { raw in
            var start = 0
            for index in 0..<raw.count where raw[index] == 10 {
                let end = index > start && raw[index - 1] == 13 ? index - 1 : index
                lines.append(Substring(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<end]), as: UTF8.self)))
                start = index + 1
            }
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    static func parseStatusLine(_ line: Substring) throws(ParseError) -> (Int, Int, String) {
        let utf8 = Array(line.utf8)
        // "HTTP/1.x SSS" at least, then an optional reason.
        guard utf8.count >= 12, utf8.starts(with: Array("HTTP/1.".utf8)), utf8[7] == 48 || utf8[7] == 49, utf8[8] == 32,
            utf8[9...11].allSatisfy({ $0 >= 48 && $0 <= 57 }), utf8.count == 12 || utf8[12] == 32
        else { throw .malformedStatusLine(String(line)) }
        let status = Int(utf8[9] - 48) * 100 + Int(utf8[10] - 48) * 10 + Int(utf8[11] - 48)
        guard status >= 100 else { throw .malformedStatusLine(String(line)) }
        let reason = utf8.count > 13 ? String(decoding: utf8[13...], as: UTF8.self) : ""
        return (Int(utf8[7] - 48), status, reason)
    }

    static func parseHeader(_ line: Substring) throws(ParseError) -> (String, String) {
        // Byte-wise (UTF-8 view) search: Character-wise would run grapheme breaking on every header.
        guard let colon = line.utf8.firstIndex(of: UInt8(ascii: ":")) else { throw .malformedHeader(String(line)) }
        let name = line[..<colon]
        guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else { throw .malformedHeader(String(line)) }
        let value = line[line.utf8.index(after: colon)...].trimmingSpaces
        guard !value.utf8.contains(where: { $0 == 0 || $0 == 13 }) else { throw .malformedHeader(String(line)) }
        return (String(name), String(value))
    }

    /// An HTTP token character (RFC 9110 §5.6.2): what a header name may hold. keel-pool checks app headers with it.
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    // MARK: body

    private mutating func readBody(_ body: Body, framed: Bool, _ buffer: inout ByteBuffer) throws(ParseError) -> Event? {
        switch body {
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .fixed(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            state = count == remaining ? .ending(framed: framed) : .body(.fixed(remaining: remaining - count), framed: framed)
            return .body(buffer.readSlice(length: count)!)
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            state = .body(count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count), framed: framed)
            return .body(buffer.readSlice(length: count)!)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw .invalidChunk("no CRLF after chunk data") }
            state = .body(.chunkSize, framed: framed)
            return try next(&buffer)
        case .chunkSize:
            guard let line = try readLine(&buffer, limit: 1024, what: "chunk-size line") else { return nil }
            let sizeText = line.prefix { $0 != ";" }.trimmingSpaces
            guard !sizeText.isEmpty, sizeText.utf8.count <= 15, let size = Int(sizeText, radix: 16), size >= 0,
                sizeText.utf8.allSatisfy({ Self.isHexDigit($0) })
            else { throw .invalidChunk("chunk size \(UWSGIError.quoted(String(line)))") }
            state = .body(size == 0 ? .trailers : .chunkData(remaining: size), framed: framed)
            return try next(&buffer)
        case .trailers:
            // Trailer fields are read and dropped (nothing keel relays needs them).
            while true {
                guard let line = try readLine(&buffer, limit: maxHeadSize, what: "trailer") else { return nil }
                if line.isEmpty {
                    state = .ending(framed: framed)
                    return try next(&buffer)
                }
            }
        }
    }

    /// One CRLF-ended line, without its terminator; nil until complete.
    private func readLine(_ buffer: inout ByteBuffer, limit: Int, what: String) throws(ParseError) -> Substring? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: 10) else {
            if view.count > limit { throw .invalidChunk("\(what) longer than \(limit) bytes") }
            return nil
        }
        let length = newline - view.startIndex
        guard length <= limit else { throw .invalidChunk("\(what) longer than \(limit) bytes") }
        let bytes = buffer.readBytes(length: length + 1)!
        var text = Substring(String(decoding: bytes.dropLast(), as: UTF8.self))
        if text.last == "\r" { text = text.dropLast() }
        return text
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...70).contains(byte) || (97...102).contains(byte)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (no Foundation on the hot path); the front's header parsing
    /// uses it too.
    package var trimmingSpaces: Substring {
        // On the UTF-8 view: dropFirst/dropLast on Characters would run grapheme breaking.
        let bytes = utf8
        guard let first = bytes.firstIndex(where: { $0 != 32 && $0 != 9 }),
            let last = bytes.lastIndex(where: { $0 != 32 && $0 != 9 })
        else { return self[endIndex...] }
        return self[first..<bytes.index(after: last)]
    }
}
