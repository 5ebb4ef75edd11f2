import NIOCore
import Testing

@testable import UWSGI

/// What a parser produced from a whole feeding: the head, the concatenated body, and event counts.
struct ParsedRequest {
    var head: UWSGIRequestHead?
    var body: [UInt8] = []
    var headEvents = 0
    var bodyEvents = 0
    var emptyBodyEvents = 0
    var endEvents = 0
    /// Event kinds in order: "head", "body", "end".
    var events: [String] = []
    var isComplete = false
    /// Bytes left unconsumed in the cumulation buffer after the last piece.
    var leftover = ByteBuffer()
}

/// Feeds `pieces` into one cumulation buffer (as a channel handler would), draining events after
/// each piece, then calls `finish` on what is left, as if the peer had closed.
func parse(
    _ pieces: [[UInt8]],
    parser: UWSGIRequestParser = UWSGIRequestParser()
) throws(UWSGIError) -> ParsedRequest {
    var parser = parser
    var result = ParsedRequest()
    var buffer = ByteBuffer()
    for piece in pieces {
        buffer.writeBytes(piece)
        while let event = try parser.next(&buffer) {
            switch event {
            case .head(let head):
                result.head = head
                result.headEvents += 1
                result.events.append("head")
            case .body(let chunk):
                result.body += chunk.readableBytesView
                result.bodyEvents += 1
                result.events.append("body")
                if chunk.readableBytes == 0 { result.emptyBodyEvents += 1 }
            case .end:
                result.endEvents += 1
                result.events.append("end")
            }
        }
    }
    try parser.finish(leftover: buffer)
    result.isComplete = parser.isComplete
    result.leftover = buffer
    return result
}

/// The bytes of a whole request packet: header, var block, body.
func packetBytes(
    vars: [UWSGIVar], body: [UInt8] = [], modifier1: UInt8 = 0, modifier2: UInt8 = 0
) throws(UWSGIError) -> [UInt8] {
    var buffer = ByteBuffer()
    try UWSGIPacket.writeRequestHead(vars: vars, modifier1: modifier1, modifier2: modifier2, into: &buffer)
    buffer.writeBytes(body)
    return Array(buffer.readableBytesView)
}

/// A raw packet from a hand-built var block, for malformed blocks the encoder refuses to write.
func rawPacket(modifier1: UInt8 = 0, block: [UInt8], modifier2: UInt8 = 0) -> [UInt8] {
    [modifier1, UInt8(block.count & 0xFF), UInt8(block.count >> 8), modifier2] + block
}

/// One var in wire form: `keylen:u16le key vallen:u16le val`.
func rawVar(_ name: [UInt8], _ value: [UInt8]) -> [UInt8] {
    [UInt8(name.count & 0xFF), UInt8(name.count >> 8)] + name + [UInt8(value.count & 0xFF), UInt8(value.count >> 8)]
        + value
}

func expectSameVars(_ actual: [UWSGIVar]?, _ expected: [UWSGIVar], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual?.map { $0.name } == expected.map { $0.name }, sourceLocation: sourceLocation)
    #expect(actual?.map { $0.value } == expected.map { $0.value }, sourceLocation: sourceLocation)
}

/// A request as nginx's uwsgi_params would send it, with a body of a few hundred bytes.
let sampleBody: [UInt8] = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
let sampleVars: [UWSGIVar] = [
    ("QUERY_STRING", "a=1&b=%C3%A9"),
    ("REQUEST_METHOD", "POST"),
    ("CONTENT_TYPE", "application/octet-stream"),
    ("CONTENT_LENGTH", "300"),
    ("REQUEST_URI", "/upload?a=1&b=%C3%A9"),
    ("PATH_INFO", "/upload"),
    ("DOCUMENT_ROOT", ""),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REMOTE_ADDR", "127.0.0.1"),
    ("HTTP_HOST", "example.com"),
    ("HTTP_X_NAME", "Zoë ✓ 日本"),
]
let samplePacket: [UInt8] = try! packetBytes(vars: sampleVars, body: sampleBody)

@Suite struct UWSGIRequestParserTests {
    // MARK: Splits

    @Test func wholePacketInOneRead() throws {
        let parsed = try parse([samplePacket])
        expectSameVars(parsed.head?.vars, sampleVars)
        #expect(parsed.head?.contentLength == 300)
        #expect(parsed.head?.modifier1 == 0)
        #expect(parsed.head?.modifier2 == 0)
        #expect(parsed.body == sampleBody)
        #expect(parsed.headEvents == 1)
        #expect(parsed.isComplete)
        #expect(parsed.leftover.readableBytes == 0)
    }

    @Test(arguments: 0...samplePacket.count)
    func packetSplitInTwo(at split: Int) throws {
        let parsed = try parse([Array(samplePacket[..<split]), Array(samplePacket[split...])])
        expectSameVars(parsed.head?.vars, sampleVars)
        #expect(parsed.head?.contentLength == 300)
        #expect(parsed.body == sampleBody)
        #expect(parsed.headEvents == 1)
        #expect(parsed.endEvents == 1)
        #expect(parsed.events.last == "end")
        #expect(parsed.emptyBodyEvents == 0)
        #expect(parsed.isComplete)
        #expect(parsed.leftover.readableBytes == 0)
    }

    @Test func packetFedOneByteAtATime() throws {
        let parsed = try parse(samplePacket.map { [$0] })
        expectSameVars(parsed.head?.vars, sampleVars)
        #expect(parsed.head?.contentLength == 300)
        #expect(parsed.body == sampleBody)
        #expect(parsed.headEvents == 1)
        #expect(parsed.bodyEvents == sampleBody.count)
        #expect(parsed.emptyBodyEvents == 0)
        #expect(parsed.isComplete)
    }

    @Test func headArrivesBeforeTheBody() throws {
        var parser = UWSGIRequestParser()
        let headSize = samplePacket.count - sampleBody.count
        var buffer = ByteBuffer(bytes: samplePacket[..<headSize])
        guard case .head(let head) = try parser.next(&buffer) else {
            Issue.record("expected the head once the var block is complete")
            return
        }
        #expect(head["CONTENT_LENGTH"] == "300")
        #expect(head["NOT_THERE"] == nil)
        #expect(try parser.next(&buffer) == nil)
        #expect(!parser.isComplete)
        #expect(throws: UWSGIError.truncatedBody(expected: 300, received: 0)) { try parser.finish(leftover: buffer) }
    }

    // MARK: Body length

    @Test(
        arguments: [
            [("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "")],
            [("REQUEST_METHOD", "GET")],
            [("CONTENT_LENGTH", "0")],
            [],
        ] as [[UWSGIVar]])
    func bodylessRequestIsCompleteAfterTheHead(vars: [UWSGIVar]) throws {
        let parsed = try parse([try packetBytes(vars: vars)])
        #expect(parsed.head?.contentLength == 0)
        expectSameVars(parsed.head?.vars, vars)
        #expect(parsed.body.isEmpty)
        #expect(parsed.bodyEvents == 0)
        #expect(parsed.isComplete)
    }

    @Test func bytesAfterTheBodyAreLeftUnconsumed() throws {
        let vars: [UWSGIVar] = [("CONTENT_LENGTH", "3")]
        let parsed = try parse([try packetBytes(vars: vars, body: Array("abcXYZ".utf8))])
        #expect(parsed.body == Array("abc".utf8))
        #expect(parsed.isComplete)
        #expect(parsed.leftover.readableBytesView.elementsEqual("XYZ".utf8))
    }

    @Test func nothingIsConsumedOnceDone() throws {
        var parser = UWSGIRequestParser()
        var buffer = ByteBuffer(bytes: try packetBytes(vars: [("CONTENT_LENGTH", "1")], body: [0x41]))
        while try parser.next(&buffer) != nil {}
        #expect(parser.isComplete)
        buffer.writeBytes(try packetBytes(vars: [("A", "b")]))
        let before = buffer.readableBytes
        #expect(try parser.next(&buffer) == nil)
        #expect(buffer.readableBytes == before)
    }

    @Test func firstContentLengthWins() throws {
        let vars: [UWSGIVar] = [("CONTENT_LENGTH", "2"), ("CONTENT_LENGTH", "5")]
        let parsed = try parse([try packetBytes(vars: vars, body: [1, 2])])
        #expect(parsed.head?.contentLength == 2)
        #expect(parsed.body == [1, 2])
        #expect(parsed.isComplete)
    }

    @Test func closedConnectionWithNothingSentIsNotAnError() throws {
        let parser = UWSGIRequestParser()
        try parser.finish(leftover: ByteBuffer())
        #expect(!parser.isComplete)
    }

    @Test(
        arguments: [
            (try! packetBytes(vars: [("CONTENT_LENGTH", "4")], body: [1, 2, 3, 4]), 1),
            (try! packetBytes(vars: [("REQUEST_METHOD", "GET")]), 0),
            (try! packetBytes(vars: [("CONTENT_LENGTH", "")]), 0),
        ] as [([UInt8], Int)])
    func eventsAreHeadThenBodyThenOneEnd(packet: [UInt8], bodyEvents: Int) throws {
        let parsed = try parse([packet])
        #expect(parsed.events == ["head"] + Array(repeating: "body", count: bodyEvents) + ["end"])
        #expect(parsed.isComplete)
    }

    @Test func endComesOnlyAfterTheLastBodyByte() throws {
        let parsed = try parse(samplePacket.map { [$0] })
        #expect(parsed.events.first == "head")
        #expect(parsed.events.last == "end")
        #expect(parsed.events.filter { $0 == "end" }.count == 1)
        #expect(parsed.events.filter { $0 == "body" }.count == sampleBody.count)
    }

    @Test func notCompleteUntilEndIsDelivered() throws {
        var parser = UWSGIRequestParser()
        var buffer = ByteBuffer(bytes: try packetBytes(vars: [("CONTENT_LENGTH", "2")], body: [7, 8]))
        guard case .head = try parser.next(&buffer) else {
            Issue.record("expected head")
            return
        }
        guard case .body(let chunk) = try parser.next(&buffer) else {
            Issue.record("expected body")
            return
        }
        #expect(Array(chunk.readableBytesView) == [7, 8])
        #expect(!parser.isComplete)
        try parser.finish(leftover: buffer)
        guard case .end = try parser.next(&buffer) else {
            Issue.record("expected end")
            return
        }
        #expect(parser.isComplete)
        #expect(try parser.next(&buffer) == nil)
    }

    // MARK: Errors

    @Test(arguments: 1...3)
    func truncatedHeader(received: Int) {
        #expect(throws: UWSGIError.truncatedHeader(received: received)) {
            try parse([Array(samplePacket.prefix(received))])
        }
    }

    @Test(arguments: [0, 1, 50])
    func truncatedVars(received: Int) throws {
        let head = try packetBytes(vars: sampleVars)
        let datasize = head.count - 4
        #expect(throws: UWSGIError.truncatedVars(expected: datasize, received: received)) {
            try parse([Array(head.prefix(4 + received))])
        }
    }

    @Test(arguments: [0, 1, 299])
    func truncatedBody(received: Int) {
        let headSize = samplePacket.count - sampleBody.count
        #expect(throws: UWSGIError.truncatedBody(expected: 300, received: received)) {
            try parse([Array(samplePacket.prefix(headSize + received))])
        }
    }

    @Test func truncatedBodyCountsBytesAcrossReads() {
        let headSize = samplePacket.count - sampleBody.count
        let pieces = samplePacket.prefix(headSize + 120).map { [$0] }
        #expect(throws: UWSGIError.truncatedBody(expected: 300, received: 120)) { try parse(pieces) }
    }

    static let overrunningBlocks: [([UInt8], Int)] = [
        // A key length pointing past the end of the block.
        (rawVar(Array("A".utf8), Array("b".utf8)) + [0x20, 0x00] + Array("KEY".utf8), 6),
        // A value length pointing past the end of the block.
        ([0x03, 0x00] + Array("KEY".utf8) + [0x09, 0x00] + Array("val".utf8), 0),
        // A dangling 1-byte key length.
        (rawVar(Array("A".utf8), Array("b".utf8)) + [0x01], 6),
        // A key with no value length after it.
        ([0x01, 0x00] + Array("K".utf8), 0),
        // A key with a dangling 1-byte value length.
        ([0x01, 0x00] + Array("K".utf8) + [0x00], 0),
    ]

    @Test(arguments: overrunningBlocks)
    func varOverrunsBlock(block: [UInt8], offset: Int) {
        let expected = UWSGIError.varOverrunsBlock(offset: offset, blockSize: block.count)
        #expect(throws: expected) { try UWSGIPacket.parseVars(ByteBuffer(bytes: block)) }
        #expect(throws: expected) { try parse([rawPacket(block: block)]) }
    }

    @Test(arguments: ["abc", "-1", "1.5", " 5", "5 ", "+5", "99999999999999999999999"])
    func invalidContentLength(value: String) {
        let vars: [UWSGIVar] = [("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", value)]
        #expect(throws: UWSGIError.invalidContentLength(value)) { try parse([try packetBytes(vars: vars)]) }
    }

    @Test(arguments: [1, 5, 0x47, 0xFF] as [UInt8])
    func unsupportedModifier1(modifier1: UInt8) throws {
        // 0x47 is "G": not an HTTP request unless the next three bytes are "ET ".
        let packet = try packetBytes(vars: [("A", "b")], modifier1: modifier1)
        #expect(throws: UWSGIError.unsupportedModifier1(modifier1)) { try parse([packet]) }
        #expect(throws: UWSGIError.unsupportedModifier1(modifier1)) { try parse(packet.map { [$0] }) }
    }

    @Test func supportedModifier1IsConfigurable() throws {
        let packet = try packetBytes(vars: [("A", "b")], modifier1: 5, modifier2: 9)
        let parsed = try parse([packet], parser: UWSGIRequestParser(supportedModifier1: [0, 5]))
        #expect(parsed.head?.modifier1 == 5)
        #expect(parsed.head?.modifier2 == 9)
        #expect(parsed.isComplete)
        #expect(throws: UWSGIError.unsupportedModifier1(0)) {
            try parse([try packetBytes(vars: [])], parser: UWSGIRequestParser(supportedModifier1: [5]))
        }
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\n", "GET"),
        ("POST /form HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("PUT /x HTTP/1.1\r\n", "PUT"),
        ("HEAD / HTTP/1.0\r\n", "HEAD"),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "PRI"),
    ])
    func httpRequestOnUWSGISocket(request: String, method: String) {
        let bytes = Array(request.utf8)
        #expect(throws: UWSGIError.httpRequestOnUWSGISocket(method: method)) { try parse([bytes]) }
        #expect(throws: UWSGIError.httpRequestOnUWSGISocket(method: method)) { try parse(bytes.map { [$0] }) }
    }

    @Test(arguments: [
        "DELETE /x HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n", "PATCH / HTTP/1.1\r\n",
        "CONNECT a:443 HTTP/1.1\r\n", "TRACE / HTTP/1.1\r\n",
    ])
    func longerHTTPMethodsAreRecognised(request: String) {
        let error = #expect(throws: UWSGIError.self) { try parse([Array(request.utf8)]) }
        guard case .httpRequestOnUWSGISocket(let method)? = error else {
            Issue.record("expected httpRequestOnUWSGISocket, got \(String(describing: error))")
            return
        }
        #expect(request.hasPrefix(method))
        #expect(!method.hasSuffix(" "))
    }
}
