import NIOCore
import Testing

@testable import UWSGI

@Suite struct UWSGIPacketTests {
    // MARK: Round trips

    static let roundTripCases: [([UWSGIVar], [UInt8])] = [
        ([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")], []),
        ([("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", ""), ("QUERY_STRING", ""), ("DOCUMENT_ROOT", "")], []),
        ([("", ""), ("EMPTY", ""), ("", "value for an empty name")], []),
        (
            [
                ("HTTP_X_GREETING", "héllo wörld"), ("HTTP_X_EMOJI", "👩‍👩‍👧 🚀"), ("HTTP_X_CJK", "日本語テキスト"),
                ("CONTENT_LENGTH", "12"), ("KÉY_ÜNICODE", "ñ"), ("HTTP_X_CRLF", "a\r\nb"),
            ],
            Array("binary body!".utf8)
        ),
        ([("CONTENT_LENGTH", "256")], (0...255).map { UInt8($0) }),
        (
            (0..<1000).map { ("HTTP_X_VAR_\($0)", String(repeating: "v", count: $0 % 17)) } + [("CONTENT_LENGTH", "3")],
            [0, 1, 2]
        ),
        // Same name many times: order and duplicates are kept.
        ((0..<50).map { ("HTTP_COOKIE", "c\($0)") }, []),
    ]

    @Test(arguments: roundTripCases)
    func roundTrip(vars: [UWSGIVar], body: [UInt8]) throws {
        let packet = try packetBytes(vars: vars, body: body)
        let parsed = try parse([packet])
        expectSameVars(parsed.head?.vars, vars)
        #expect(parsed.head?.contentLength == body.count)
        #expect(parsed.body == body)
        #expect(parsed.isComplete)

        let block = ByteBuffer(bytes: packet.dropFirst(4).dropLast(body.count))
        #expect(block.readableBytes == Int(packet[1]) | Int(packet[2]) << 8)
        expectSameVars(try UWSGIPacket.parseVars(block), vars)
    }

    @Test func roundTripOfTheLargestVarBlock() throws {
        let vars: [UWSGIVar] = [("A", String(repeating: "x", count: 65_530))]
        let packet = try packetBytes(vars: vars)
        #expect(Array(packet.prefix(4)) == [0, 0xFF, 0xFF, 0])
        let parsed = try parse([packet])
        expectSameVars(parsed.head?.vars, vars)
        #expect(parsed.isComplete)
    }

    // MARK: Encoding

    @Test func headerAndVarLayout() throws {
        var buffer = ByteBuffer()
        try UWSGIPacket.writeRequestHead(vars: [("A", "bc"), ("", "é")], modifier1: 0, modifier2: 7, into: &buffer)
        let expected: [UInt8] = [
            0, 13, 0, 7,
            1, 0, 0x41, 2, 0, 0x62, 0x63,
            0, 0, 2, 0, 0xC3, 0xA9,
        ]
        #expect(Array(buffer.readableBytesView) == expected)
    }

    @Test func datasizeIsLittleEndian() throws {
        let packet = try packetBytes(vars: [("K", String(repeating: "v", count: 295))])
        #expect(Array(packet.prefix(4)) == [0, 0x2C, 0x01, 0])
    }

    @Test func encodingAppendsToWhatIsAlreadyInTheBuffer() throws {
        var buffer = ByteBuffer(string: "prefix")
        try UWSGIPacket.writeRequestHead(vars: [("A", "b")], into: &buffer)
        #expect(Array(buffer.readableBytesView) == Array("prefix".utf8) + [0, 6, 0, 0, 1, 0, 0x41, 1, 0, 0x62])
    }

    static let oversizedVarSets: [([UWSGIVar], UWSGIError)] = [
        (
            [("A", "b"), (String(repeating: "k", count: 65_536), "v")],
            .varTooLarge(name: String(repeating: "k", count: 40), size: 65_536)
        ),
        ([("HTTP_COOKIE", String(repeating: "c", count: 65_536))], .varTooLarge(name: "HTTP_COOKIE", size: 65_536)),
        ([("", String(repeating: "é", count: 40_000))], .varTooLarge(name: "", size: 80_000)),
        ([("A", String(repeating: "x", count: 65_531))], .varBlockTooLarge(size: 65_536)),
        ([("", String(repeating: "x", count: 65_535))], .varBlockTooLarge(size: 65_539)),
        (
            [("A", String(repeating: "x", count: 40_000)), ("B", String(repeating: "y", count: 40_000))],
            .varBlockTooLarge(size: 80_010)
        ),
        ((0..<20_000).map { _ in ("", "") }, .varBlockTooLarge(size: 80_000)),
    ]

    @Test(arguments: oversizedVarSets)
    func oversizedVarsAreRefusedAndNothingIsWritten(vars: [UWSGIVar], error: UWSGIError) {
        var buffer = ByteBuffer(string: "kept")
        #expect(throws: error) { try UWSGIPacket.writeRequestHead(vars: vars, into: &buffer) }
        #expect(String(buffer: buffer) == "kept")
    }

    // MARK: Decoding

    @Test func emptyVarBlockHasNoVars() throws {
        #expect(try UWSGIPacket.parseVars(ByteBuffer()).isEmpty)
    }

    @Test func varBlockIsReadFromTheReaderIndexOfASlice() throws {
        var outer = ByteBuffer(bytes: [0xEE, 0xEE] + rawVar(Array("K".utf8), Array("v".utf8)) + [0xEE])
        outer.moveReaderIndex(forwardBy: 2)
        let block = outer.getSlice(at: outer.readerIndex, length: 6)!
        expectSameVars(try UWSGIPacket.parseVars(block), [("K", "v")])
    }

    @Test(
        arguments: [
            ([0xE9] as [UInt8], "é"),
            (Array("caf".utf8) + [0xE9], "café"),
            ([0x2F, 0xFF, 0xFE, 0x80, 0x00, 0x7F], "/\u{FF}\u{FE}\u{80}\u{00}\u{7F}"),
            // Valid UTF-8 followed by a stray byte: the whole value falls back to Latin-1.
            ([0xC3, 0xA9, 0xE9], "\u{C3}\u{A9}\u{E9}"),
            // A truncated UTF-8 sequence.
            ([0x41, 0xE2, 0x82], "A\u{E2}\u{82}"),
            // CR LF must stay two scalars even though Swift makes one Character of them.
            ([0x0D, 0x0A, 0xE9], "\r\n\u{E9}"),
        ] as [([UInt8], String)])
    func nonUTF8BytesDecodeAsLatin1(bytes: [UInt8], expected: String) throws {
        let block = rawVar(bytes, bytes)
        let vars = try UWSGIPacket.parseVars(ByteBuffer(bytes: block))
        #expect(vars.count == 1)
        #expect(vars.first?.name == expected)
        #expect(vars.first?.value == expected)
        #expect(vars.first?.value.unicodeScalars.map { $0.value } == bytes.map { UInt32($0) })
    }

    @Test func everyByteValueSurvivesLatin1Decoding() throws {
        let bytes = (0...255).map { UInt8($0) }
        let vars = try UWSGIPacket.parseVars(ByteBuffer(bytes: rawVar(Array("PATH_INFO".utf8), bytes)))
        #expect(vars.first?.value.unicodeScalars.map { UInt8($0.value) } == bytes)
    }

    @Test func latin1VarThroughTheParser() throws {
        let parsed = try parse([rawPacket(block: rawVar(Array("PATH_INFO".utf8), Array("/caf".utf8) + [0xE9]))])
        #expect(parsed.head?["PATH_INFO"] == "/café")
    }

    // MARK: CONTENT_LENGTH

    @Test(
        arguments: [
            ("", 0), ("0", 0), ("5", 5), ("007", 7), ("300", 300), ("9223372036854775807", Int.max),
        ] as [(String, Int)])
    func validContentLength(value: String, expected: Int) throws {
        #expect(try UWSGIPacket.parseContentLength(value) == expected)
    }

    @Test(arguments: [
        "abc", "-1", "1.5", " 5", "5 ", "+5", "0x10", "1e3", "5\n", "\u{0663}",
        "99999999999999999999999", "9223372036854775808",
    ])
    func invalidContentLength(value: String) {
        #expect(throws: UWSGIError.invalidContentLength(value)) { try UWSGIPacket.parseContentLength(value) }
    }

    // MARK: Errors

    static let allErrors: [UWSGIError] = [
        .truncatedHeader(received: 2),
        .truncatedVars(expected: 100, received: 10),
        .truncatedBody(expected: 300, received: 12),
        .varBlockTooLarge(size: 70_000),
        .varTooLarge(name: "HTTP_COOKIE", size: 70_000),
        .varOverrunsBlock(offset: 6, blockSize: 11),
        .invalidContentLength("abc"),
        .invalidContentLength(""),
        .unsupportedModifier1(5),
        .httpRequestOnUWSGISocket(method: "GET"),
    ]

    @Test(arguments: allErrors)
    func errorDescriptionIsOneLine(error: UWSGIError) {
        #expect(!error.description.isEmpty)
        // Byte-wise: as Characters, "\r\n" is one grapheme that contains("\n") does not match.
        #expect(!error.description.utf8.contains(UInt8(ascii: "\n")))
        #expect(!error.description.utf8.contains(UInt8(ascii: "\r")))
        #expect(String(describing: error) == error.description)
    }

    @Test func errorDescriptionsCarryTheirNumbers() {
        #expect(UWSGIError.truncatedHeader(received: 3).description.contains("3 of 4"))
        #expect(UWSGIError.truncatedVars(expected: 100, received: 10).description.contains("10 of 100"))
        #expect(UWSGIError.truncatedBody(expected: 300, received: 12).description.contains("12 of CONTENT_LENGTH 300"))
        #expect(UWSGIError.invalidContentLength("abc").description.contains("\"abc\""))
        #expect(UWSGIError.unsupportedModifier1(5).description.contains("modifier1 5"))
        #expect(UWSGIError.httpRequestOnUWSGISocket(method: "POST").description.contains("(POST ...)"))
    }

    /// The CONTENT_LENGTH value comes from the wire: its description escapes it so a log record stays one line.
    @Test(arguments: ["5\n", "1\r\nX-Injected: yes"])
    func errorDescriptionStaysOneLineForWireSuppliedText(value: String) throws {
        let error = #expect(throws: UWSGIError.self) {
            try parse([try packetBytes(vars: [("CONTENT_LENGTH", value)])])
        }
        #expect(error?.description.utf8.contains(UInt8(ascii: "\n")) == false)
        #expect(error?.description.utf8.contains(UInt8(ascii: "\r")) == false)
    }
}
