import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import KeelFront

/// HTTP/2's keel-side pieces without sockets: the h2c preface sniffer, the naming of NIO's connection errors, and the
/// limits as SETTINGS. The protocol itself is tested with curl, h2load and frame scripts (FrontHTTP2Tests).
@Suite struct HTTP2Tests {
    static func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func prefaceSnifferDecidesAtTheFirstDifferentByte() {
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")) == .http2)
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\u{4}")) == .http2)
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("PRI * HTTP/2")) == .needMore)
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("P")) == .needMore)
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("POST / HTTP/1.1\r\n")) == .http1)
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("GET / HTTP/1.1\r\n\r\n")) == .http1)
        // An HTTP/1 request for "PRI" with another target is HTTP/1's (and its parser's) business.
        #expect(HTTP2PrefaceSniffer.verdict(Self.bytes("PRI /x HTTP/1.1\r\n")) == .http1)
    }

    @Test func snifferHandsBufferedBytesToThePipelineItChose() throws {
        for (chunks, expected) in [
            (["PRI * HTTP/2.0\r\n", "\r\nSM\r\n\r\nrest"], HTTP2PrefaceSniffer.Verdict.http2),
            (["GE", "T / HTTP/1.1\r\n\r\n"], .http1),
        ] {
            let channel = EmbeddedChannel()
            let chosen = NIOLoopBoundBox<HTTP2PrefaceSniffer.Verdict?>(nil, eventLoop: channel.eventLoop)
            let sniffer = HTTP2PrefaceSniffer(timeout: .seconds(60)) { verdict, _ in chosen.value = verdict }
            try channel.pipeline.syncOperations.addHandler(sniffer)
            for chunk in chunks { try channel.writeInbound(Self.bytes(chunk)) }
            #expect(chosen.value == expected)
            // Everything read comes out once and in order (what was held back in one piece), and the sniffer is gone.
            var passed = ""
            while let part = try channel.readInbound(as: ByteBuffer.self) { passed += String(buffer: part) }
            #expect(passed == chunks.joined())
            #expect((try? channel.pipeline.syncOperations.context(handlerType: HTTP2PrefaceSniffer.self)) == nil)
            _ = try channel.finish()
        }
    }

    @Test func silentClientIsClosedAfterTheHeaderTimeout() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(HTTP2PrefaceSniffer(timeout: .seconds(5)) { _, _ in })
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }

    @Test func aGracefulStopClosesAConnectionThatSentNothingYet() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(HTTP2PrefaceSniffer(timeout: .seconds(60)) { _, _ in })
        try channel.writeInbound(Self.bytes("PRI * HTTP"))
        #expect(channel.isActive)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!channel.isActive)
    }

    @Test func everyAttackNIOAnswersGetsItsName() {
        let cases: [(any Error, HTTP2CutOff)] = [
            (NIOHTTP2Errors.excessiveRSTFrames(), .rapidReset),
            (NIOHTTP2Errors.excessiveContinuationFrames(), .continuationFlood),
            (NIOHTTP2Errors.excessivelyLargeHeaderBlock(), .headerBlockTooLarge),
            (NIOHTTP2Errors.excessiveControlFrames(), .controlFrameFlood),
            (NIOHTTP2Errors.excessiveOutboundFrameBuffering(), .unreadReplies),
            (NIOHTTP2Errors.excessiveEmptyDataFrames(), .emptyFrameFlood),
            (NIOHTTP2Errors.unableToParseFrame(), .compressionError),
        ]
        for (error, reason) in cases { #expect(HTTP2ConnectionGuard.cutOff(for: error)?.0 == reason, "\(error)") }
        #expect(HTTP2ConnectionGuard.cutOff(for: NIOHTTP2Errors.excessiveRSTFrames())?.1.contains("rapid reset") == true)
        // Stream errors leave the connection alone.
        #expect(HTTP2ConnectionGuard.cutOff(for: NIOHTTP2Errors.streamClosed(streamID: 1, errorCode: .cancel)) == nil)
        #expect(HTTP2ConnectionGuard.cutOff(for: ChannelError.ioOnClosedChannel) == nil)
        #expect(HTTP2ConnectionGuard.code(for: .rapidReset) == "ENHANCE_YOUR_CALM")
    }

    @Test func limitsBecomeSettingsAndWindows() {
        var limits = FrontConfiguration.Limits()
        limits.http2MaxConcurrentStreams = 64
        limits.http2InitialWindowSize = 1 << 20
        limits.maxHeaderSize = 16 * 1024
        let configuration = HTTP2Pipeline.configuration(limits)
        let settings = Dictionary(uniqueKeysWithValues: configuration.connection.initialSettings.map { ($0.parameter, $0.value) })
        #expect(settings[.maxConcurrentStreams] == 64)
        #expect(settings[.initialWindowSize] == 1 << 20)
        #expect(settings[.maxHeaderListSize] == 16 * 1024)
        #expect(configuration.stream.targetWindowSize == 1 << 20)
        #expect(configuration.connection.targetWindowSize == 16 << 20)
        // The defaults are nginx's: 128 streams, 64k window.
        let defaults = HTTP2Pipeline.configuration(FrontConfiguration.Limits())
        #expect(defaults.connection.initialSettings.contains { $0.parameter == .maxConcurrentStreams && $0.value == 128 })
        #expect(FrontConfiguration.Limits().http2MaxRequests == 1000)
    }

    /// NIO reports connection and stream errors alike; the GOAWAY it wrote just before tells them apart.
    @Test func theGoAwayWatchFindsGoAwayFramesAmongWrites() throws {
        func frame(type: UInt8, stream: UInt32, payload: [UInt8]) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(payload.count) << 8 | UInt32(type))
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(stream)
            buffer.writeBytes(payload)
            return buffer
        }
        let goAway = frame(type: 7, stream: 0, payload: [0, 0, 0, 3, 0, 0, 0, 1] + Array("debug".utf8))
        #expect(HTTP2GoAwayWatch.goAwayErrorCode(in: goAway) == .protocolError)
        #expect(HTTP2GoAwayWatch.goAwayErrorCode(in: frame(type: 7, stream: 0, payload: [0, 0, 0, 0, 0, 0, 0, 11])) == .enhanceYourCalm)
        #expect(HTTP2GoAwayWatch.goAwayErrorCode(in: frame(type: 3, stream: 1, payload: [0, 0, 0, 1])) == nil, "RST_STREAM")
        #expect(HTTP2GoAwayWatch.goAwayErrorCode(in: frame(type: 7, stream: 1, payload: [0, 0, 0, 0, 0, 0, 0, 1])) == nil)
        var cut = goAway
        cut.moveWriterIndex(to: cut.writerIndex - 1)
        #expect(HTTP2GoAwayWatch.goAwayErrorCode(in: cut) == nil, "a length that is not the buffer's")
        #expect(HTTP2ErrorCode.enhanceYourCalm.rfcName == "ENHANCE_YOUR_CALM" && HTTP2ErrorCode(networkCode: 0x99).rfcName == "0x99")

        let channel = EmbeddedChannel(handler: HTTP2GoAwayWatch())
        let watch = try channel.pipeline.syncOperations.handler(type: HTTP2GoAwayWatch.self)
        try channel.writeOutbound(IOData.byteBuffer(frame(type: 3, stream: 1, payload: [0, 0, 0, 1])))
        #expect(watch.takeGoAway() == nil)
        try channel.writeOutbound(IOData.byteBuffer(goAway))
        #expect(watch.takeGoAway() == .protocolError)
        #expect(watch.takeGoAway() == nil, "taken once")
        _ = try channel.finish()
    }

    @Test func hostAndAuthorityNameTheSameServerOrNot() {
        #expect(HTTP2AuthorityCheck.sameServer("example.com", "example.com"))
        #expect(HTTP2AuthorityCheck.sameServer("Example.COM", "example.com"))
        #expect(HTTP2AuthorityCheck.sameServer("example.com:443", "example.com"))
        #expect(!HTTP2AuthorityCheck.sameServer("example.com:8443", "example.com"))
        #expect(!HTTP2AuthorityCheck.sameServer("evil.example", "example.com"))
    }
}
