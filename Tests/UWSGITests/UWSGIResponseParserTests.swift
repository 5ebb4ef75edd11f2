import NIOCore
import Testing

@testable import UWSGI

/// What the response parser made of a whole reply: event kinds in order, the head, the body, or the error.
struct ParsedResponse {
    var events: [String] = []
    var head: UWSGIResponseHead?
    var responder: KeelWire.Responder?
    var body: [UInt8] = []
    var error: UWSGIResponseParser.ParseError?
}

/// Feeds `bytes` to a parser that expects one response, split every `split` bytes, then (if `close`) the peer's close.
func parseResponse(
    _ bytes: [UInt8], isHEAD: Bool = false, split: Int = Int.max, close: Bool = true,
    parser: inout UWSGIResponseParser
) -> ParsedResponse {
    var result = ParsedResponse()
    var buffer = ByteBuffer()
    parser.expectResponse(isHEAD: isHEAD)
    func record(_ event: UWSGIResponseParser.Event) {
        switch event {
        case .responder(let r):
            result.responder = r
            result.events.append("frame")
        case .head(let h):
            result.head = h
            result.events.append("head")
        case .body(let b):
            result.body += b.readableBytesView
            if result.events.last != "body" { result.events.append("body") }
        case .end: result.events.append("end")
        case .goodbye: result.events.append("goodbye")
        }
    }
    do {
        var offset = 0
        repeat {
            let end = min(bytes.count, offset &+ split)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            while let event = try parser.next(&buffer) { record(event) }
        } while offset < bytes.count
        if close, let event = try parser.finish() { record(event) }
    } catch {
        result.error = error
    }
    return result
}

func parseResponse(_ bytes: [UInt8], isHEAD: Bool = false, split: Int = Int.max, close: Bool = true) -> ParsedResponse {
    var parser = UWSGIResponseParser()
    return parseResponse(bytes, isHEAD: isHEAD, split: split, close: close, parser: &parser)
}

func frame(pid: UInt32 = 4242, capacity: UInt16 = 2) -> [UInt8] {
    var buffer = ByteBuffer()
    KeelWire.writeResponseFrame(KeelWire.Responder(pid: pid, capacity: capacity), into: &buffer)
    return Array(buffer.readableBytesView)
}

@Suite("UWSGIResponseParser")
struct UWSGIResponseParserTests {
    static let splits = [Int.max, 1, 3, 7]

    @Test(arguments: splits)
    func classicResponseEndsWithTheClose(split: Int) {
        let raw = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world".utf8)
        let parsed = parseResponse(raw, split: split)
        #expect(parsed.error == nil)
        #expect(parsed.events == ["head", "body", "end"])
        #expect(parsed.head?.status == 200)
        #expect(parsed.head?.reason == "OK")
        #expect(parsed.head?.headers.first?.name == "Content-Type")
        #expect(parsed.body == Array("hello world".utf8))
    }

    @Test(arguments: splits)
    func framedResponseWithContentLengthEndsAtItsLength(split: Int) {
        let raw = frame() + Array("HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello".utf8)
        let parsed = parseResponse(raw, split: split, close: false)
        #expect(parsed.error == nil)
        #expect(parsed.events == ["frame", "head", "body", "end"])
        #expect(parsed.responder == KeelWire.Responder(pid: 4242, capacity: 2))
        #expect(parsed.body == Array("hello".utf8))
    }

    @Test(arguments: splits)
    func chunkedBodyIsDechunkedAndTrailersDropped(split: Int) {
        let raw = frame() + Array(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-T: 1\r\n\r\n".utf8)
        let parsed = parseResponse(raw, split: split, close: false)
        #expect(parsed.error == nil)
        #expect(parsed.events == ["frame", "head", "body", "end"])
        #expect(parsed.body == Array("hello, world!!!".utf8))
    }

    @Test func persistentConnectionCarriesResponsesOneAfterAnother() {
        var parser = UWSGIResponseParser()
        let first = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na".utf8), close: false, parser: &parser)
        #expect(first.events == ["frame", "head", "body", "end"])
        #expect(parser.isIdle)
        let head = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n".utf8), isHEAD: true, close: false, parser: &parser)
        #expect(head.events == ["frame", "head", "end"], "a response to HEAD has no body whatever its length says")
        let noContent = parseResponse(frame() + Array("HTTP/1.1 204 No Content\r\n\r\n".utf8), close: false, parser: &parser)
        #expect(noContent.events == ["frame", "head", "end"])
        let notModified = parseResponse(frame() + Array("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n".utf8), close: false, parser: &parser)
        #expect(notModified.events == ["frame", "head", "end"])
        let informational = parseResponse(
            frame() + Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8), close: false, parser: &parser)
        #expect(informational.events == ["frame", "head", "head", "end"])
        #expect(informational.head?.status == 200)
    }

    @Test func goodbyeIsAcceptedIdleOrInsteadOfAResponse() {
        var parser = UWSGIResponseParser()
        _ = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8), close: false, parser: &parser)
        var buffer = ByteBuffer(bytes: KeelWire.goodbyeBytes)
        let idle = try? parser.next(&buffer)
        #expect(idle.map { "\($0)" } == "goodbye")

        var racing = UWSGIResponseParser()
        _ = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8), close: false, parser: &racing)
        let answer = parseResponse(KeelWire.goodbyeBytes, parser: &racing)
        #expect(answer.events == ["goodbye"])
        #expect(answer.error == nil)
    }

    @Test func connectionCloseIsReported() {
        let parsed = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n".utf8), close: false)
        #expect(parsed.head?.closesConnection == true)
    }

    /// Responses that must be refused, each with the error it gets.
    static let refused: [(String, [UInt8], UWSGIResponseParser.ParseError)] = [
        ("status line", Array("HTTP/2 200 OK\r\n\r\n".utf8), .malformedStatusLine("HTTP/2 200 OK")),
        // Found by Tests/Fuzz: a head of blank lines has no status line at all.
        ("blank head", Array("\r\n\r\n".utf8), .malformedStatusLine("")),
        ("status code", Array("HTTP/1.1 2x0 OK\r\n\r\n".utf8), .malformedStatusLine("HTTP/1.1 2x0 OK")),
        ("header without colon", Array("HTTP/1.1 200 OK\r\nBroken\r\n\r\n".utf8), .malformedHeader("Broken")),
        ("header name with space", Array("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n".utf8), .malformedHeader("Bad Name: x")),
        ("length not a number", Array("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n".utf8), .invalidContentLength("1x")),
        ("negative length", Array("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".utf8), .invalidContentLength("-1")),
        ("two lengths", Array("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n".utf8), .invalidContentLength("1, 2")),
        ("gzip coding", Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".utf8), .unsupportedTransferEncoding("gzip, chunked")),
        ("length and chunked", Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".utf8), .bothLengthAndChunked),
        ("cut in the head", Array("HTTP/1.1 200 OK\r\nContent-Le".utf8), .truncated("inside the response head")),
        ("cut in the body", frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8), .truncated("before the end of the response body")),
        ("longer than declared", frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc".utf8), .unexpectedBytes(1)),
        ("classic longer than declared", Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcd".utf8), .unexpectedBytes(2)),
        ("framed without framing", frame() + Array("HTTP/1.1 200 OK\r\n\r\nabc".utf8), .unframedResponse(status: 200)),
        ("bad chunk size", frame() + Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8), .invalidChunk("chunk size \"zz\"")),
        ("chunk without CRLF", frame() + Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc".utf8), .invalidChunk("no CRLF after chunk data")),
        ("unknown frame kind", [0x4B, 0, 0, 9], .malformedFrame("unknown kind 9")),
        ("frame with a wrong size", [0x4B, 2, 0, 1, 0, 0], .malformedFrame("response frame with a 2-byte payload, not 8")),
        ("a worker without threads", [0x4B, 8, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0], .malformedFrame("a worker with 0 threads or a pool of 0 workers")),
        ("no bytes at all", [], .truncated("before the response began")),
    ]

    @Test(arguments: refused.indices)
    func refusesBadResponses(index: Int) {
        let (name, raw, error) = Self.refused[index]
        for split in Self.splits {
            let parsed = parseResponse(raw, split: split)
            if case .unexpectedBytes = error, case .unexpectedBytes = parsed.error {
                continue  // how many bytes were in hand when the excess was seen depends on the split
            }
            #expect(parsed.error == error, "\(name), split \(split)")
        }
    }

    @Test func classicAfterFramedAndUnaskedBytesAreErrors() {
        var parser = UWSGIResponseParser()
        _ = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8), close: false, parser: &parser)
        var idleBytes = ByteBuffer(string: "x")
        #expect(throws: UWSGIResponseParser.ParseError.unexpectedBytes(1)) { try parser.next(&idleBytes) }

        var second = UWSGIResponseParser()
        _ = parseResponse(frame() + Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8), close: false, parser: &second)
        let classic = parseResponse(Array("HTTP/1.1 200 OK\r\n\r\n".utf8), parser: &second)
        #expect(classic.error == .classicAfterFramed)
    }

    @Test func headLargerThanTheLimitIsRefused() {
        var parser = UWSGIResponseParser(maxHeadSize: 64)
        let raw = Array("HTTP/1.1 200 OK\r\nX-Long: \(String(repeating: "a", count: 100))\r\n\r\n".utf8)
        let parsed = parseResponse(raw, parser: &parser)
        #expect(parsed.error == .headTooLarge(limit: 64))
    }

    @Test func framesRoundTrip() {
        var buffer = ByteBuffer()
        KeelWire.writeGoodbyeFrame(into: &buffer)
        #expect(Array(buffer.readableBytesView) == KeelWire.goodbyeBytes)
        #expect(frame().count == KeelWire.responseFrameSize)
    }
}
