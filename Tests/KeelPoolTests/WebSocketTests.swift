import KeelApp
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import KeelPool

/// RFC 6455's rules keel-pool keeps on top of NIO's framing: the handshake on CGI vars, and `WebSocketSession` on an
/// embedded channel (masking, fragments, UTF-8, ping, close codes, the size limit).
@Suite struct WebSocketHandshakeAndSessionTests {
    static func request(_ extra: [(String, String)] = [], drop: String? = nil) -> Request {
        var vars: [(name: String, value: String)] = [
            ("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/ws"), ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("HTTP_UPGRADE", "websocket"), ("HTTP_CONNECTION", "keep-alive, Upgrade"),
            ("HTTP_SEC_WEBSOCKET_VERSION", "13"), ("HTTP_SEC_WEBSOCKET_KEY", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        vars.removeAll { $0.name == drop }
        for (name, value) in extra {
            vars.removeAll { $0.name == name }
            vars.append((name, value))
        }
        return Request(vars: vars)
    }

    @Test func theHandshakeIsCheckedOnTheVars() {
        #expect(WebSocketHandshake.isUpgrade(Self.request()))
        #expect(WebSocketHandshake.problem(Self.request()) == nil)
        #expect(!WebSocketHandshake.isUpgrade(Self.request(drop: "HTTP_UPGRADE")))
        #expect(WebSocketHandshake.problem(Self.request([("REQUEST_METHOD", "POST")]))?.contains("GET") == true)
        #expect(WebSocketHandshake.problem(Self.request([("SERVER_PROTOCOL", "HTTP/1.0")]))?.contains("HTTP/1.1") == true)
        #expect(WebSocketHandshake.problem(Self.request(drop: "HTTP_CONNECTION"))?.contains("Connection") == true)
        #expect(WebSocketHandshake.problem(Self.request([("HTTP_SEC_WEBSOCKET_VERSION", "8")]))?.contains("13") == true)
        for key in ["not-a-key", "", "dGhlIHNhbXBsZQ==", "dGhlIHNhbXBsZSBub25jZQ=", "dGhl=HNhbXBsZSBub25jZQ=="] {
            #expect(WebSocketHandshake.problem(Self.request([("HTTP_SEC_WEBSOCKET_KEY", key)])) != nil, "\(key)")
        }
    }

    @Test func base64LengthsAreDecodedExactly() {
        #expect(WebSocketHandshake.decodedLength("dGhlIHNhbXBsZSBub25jZQ==") == 16)
        #expect(WebSocketHandshake.decodedLength("YWJj") == 3)
        #expect(WebSocketHandshake.decodedLength("YWI=") == 2)
        #expect(WebSocketHandshake.decodedLength("YW==") == 1)
        #expect(WebSocketHandshake.decodedLength("Y===") == nil)
        #expect(WebSocketHandshake.decodedLength("YW*=") == nil)
    }

    /// A session on an embedded channel, with NIO's decoder and encoder in front as the worker installs them.
    final class SessionUnderTest {
        let channel = EmbeddedChannel()
        let exchange: AsyncExchange
        let session: WebSocketSession

        init(maxMessageSize: Int = 1024) throws {
            exchange = AsyncExchange(
                id: 1, request: WebSocketHandshakeAndSessionTests.request(), connection: NullConnection(),
                bodyExpected: false, isWebSocket: true)
            session = try WebSocketUpgrade.install(
                exchange: exchange, maxMessageSize: maxMessageSize, pipeline: channel.pipeline.syncOperations,
                position: .first)
        }

        /// A client frame (masked unless told otherwise), as bytes on the wire.
        func send(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) throws {
            var buffer = channel.allocator.buffer(capacity: payload.count + 14)
            buffer.writeInteger(UInt8((fin ? 0x80 : 0) | Int(webSocketOpcode: opcode)))
            let maskBit: UInt8 = masked ? 0x80 : 0
            if payload.count < 126 {
                buffer.writeInteger(maskBit | UInt8(payload.count))
            } else {
                buffer.writeInteger(maskBit | 126)
                buffer.writeInteger(UInt16(payload.count))
            }
            let mask: [UInt8] = [1, 2, 3, 4]
            if masked { buffer.writeBytes(mask) }
            buffer.writeBytes(payload.enumerated().map { masked ? $0.element ^ mask[$0.offset % 4] : $0.element })
            try channel.writeInbound(buffer)
        }

        /// The frames the server wrote, decoded: (opcode, payload).
        func written() throws -> [(WebSocketOpcode, [UInt8])] {
            var frames: [(WebSocketOpcode, [UInt8])] = []
            var all = channel.allocator.buffer(capacity: 0)
            while var part = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&part) }
            while all.readableBytes >= 2 {
                let first: UInt8 = all.readInteger()!
                var length = Int(all.readInteger(as: UInt8.self)! & 0x7F)
                if length == 126 { length = Int(all.readInteger(as: UInt16.self)!) }
                frames.append((WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F)!, all.readBytes(length: length) ?? []))
            }
            return frames
        }

        func messages() -> [WebSocketInbound] {
            var got: [WebSocketInbound] = []
            while case .message(let message) = exchange.readWebSocket() {
                got.append(message)
                if case .closed = message { break }
            }
            return got
        }
    }

    final class NullConnection: AsyncConnection {
        func send(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, for exchange: AsyncExchange) {}
        func fail(for exchange: AsyncExchange) {}
        func resumeReading() {}
        func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], for exchange: AsyncExchange) {}
        func sendWebSocket(_ message: WebSocketOutbound, for exchange: AsyncExchange) {}
        func endWebSocket(failed: Bool, for exchange: AsyncExchange) {}
    }

    @Test func fragmentsAreJoinedAndPingsAnswered() throws {
        let test = try SessionUnderTest()
        try test.send(.text, Array("hel".utf8), fin: false)
        try test.send(.ping, [7, 7])
        try test.send(.continuation, Array("lo".utf8))
        try test.send(.binary, [1, 2, 3])
        let frames = try test.written()
        #expect(frames.count == 1 && frames[0].0 == .pong && frames[0].1 == [7, 7])
        let messages = test.messages()
        guard messages.count == 2, case .text("hello") = messages[0], case .binary(let data) = messages[1] else {
            Issue.record("\(messages)"); return
        }
        #expect(Array(data.readableBytesView) == [1, 2, 3])
    }

    @Test func anUnmaskedFrameClosesWith1002() throws {
        let test = try SessionUnderTest()
        try test.send(.text, Array("hi".utf8), masked: false)
        let frames = try test.written()
        #expect(frames.first?.0 == .connectionClose)
        #expect(frames.first?.1.prefix(2) == [0x03, 0xEA])
        guard case .closed(1002, _) = test.messages().last else { Issue.record("the app sees 1002"); return }
    }

    @Test func messagesOverTheLimitCloseWith1009InOneFrameOrInFragments() throws {
        let whole = try SessionUnderTest(maxMessageSize: 200)
        try whole.send(.binary, [UInt8](repeating: 1, count: 300))
        #expect(try whole.written().first?.1.prefix(2) == [0x03, 0xF1])

        let fragmented = try SessionUnderTest(maxMessageSize: 200)
        try fragmented.send(.binary, [UInt8](repeating: 1, count: 150), fin: false)
        try fragmented.send(.continuation, [UInt8](repeating: 1, count: 100))
        #expect(try fragmented.written().first?.1.prefix(2) == [0x03, 0xF1])
    }

    @Test func textThatIsNotUTF8ClosesWith1007AndAClientCloseIsEchoed() throws {
        let bad = try SessionUnderTest()
        try bad.send(.text, [0xC3, 0x28])
        #expect(try bad.written().first?.1.prefix(2) == [0x03, 0xEF])

        let closing = try SessionUnderTest()
        try closing.send(.connectionClose, [0x0F, 0xA1] + Array("bye".utf8))
        let frames = try closing.written()
        #expect(frames.first?.0 == .connectionClose && frames.first?.1 == [0x0F, 0xA1], "the client's code echoed")
        guard case .closed(4001, "bye") = closing.messages().last else { Issue.record("the app sees 4001"); return }
    }
}
