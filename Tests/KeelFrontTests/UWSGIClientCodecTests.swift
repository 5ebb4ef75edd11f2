import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import UWSGI

@testable import KeelFront

/// Records what the codec passes up: response parts, keel-wire events, errors.
final class CodecRecorder: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    var events: [String] = []
    var body: [UInt8] = []
    var status: UInt = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status.code
            events.append(head.isKeepAlive ? "head" : "head(close)")
        case .body(let buffer):
            body += buffer.readableBytesView
            events.append("body")
        case .end: events.append("end")
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event as? KeelWireEvent {
        case .responder(let responder)?: events.append("responder \(responder.pid)")
        case .goodbye?: events.append("goodbye")
        case .closing?: events.append("closing")
        case nil: break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        events.append("error: \(error)")
    }
}

@Suite struct UWSGIClientCodecTests {
    static func channel() throws -> (EmbeddedChannel, CodecRecorder) {
        let recorder = CodecRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(UWSGIClientCodec())
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).wait()
        return (channel, recorder)
    }

    static func framed(_ http: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        KeelWire.writeResponseFrame(KeelWire.Responder(pid: 99, capacity: 2), into: &buffer)
        buffer.writeString(http)
        return buffer
    }

    @Test func packetGoesOutAsBuiltAndAFramedResponseComesBackKeptAlive() throws {
        let (channel, recorder) = try Self.channel()
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT"), isHEAD: false))
        #expect(try channel.readOutbound(as: IOData.self) == .byteBuffer(ByteBuffer(string: "PKT")))
        try channel.writeInbound(Self.framed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        #expect(recorder.events == ["responder 99", "head", "body", "end"])
        #expect(recorder.body == Array("ok".utf8))
        // The next request on the same connection.
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT2"), isHEAD: true))
        try channel.writeInbound(Self.framed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
        #expect(recorder.events.suffix(3) == ["responder 99", "head", "end"])
    }

    @Test func aClassicResponseIsMarkedCloseAndEndsWithTheClose() throws {
        let (channel, recorder) = try Self.channel()
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT"), isHEAD: false))
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\nbody"))
        #expect(recorder.events == ["head(close)", "body"])
        channel.pipeline.fireChannelInactive()
        #expect(recorder.events == ["head(close)", "body", "end"])
    }

    @Test func aResponseLongerThanDeclaredInOneReadPassesNothingOn() throws {
        let (channel, recorder) = try Self.channel()
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT"), isHEAD: false))
        try channel.writeInbound(Self.framed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"))
        #expect(recorder.events.count == 1, "\(recorder.events)")
        #expect(recorder.events.last?.hasPrefix("error: 5 bytes after the end of the response") == true)
        #expect(!channel.isActive, "the connection is closed")
    }

    @Test func aCutAfterTheHeadWentOnCutsTheResponse() throws {
        let (channel, recorder) = try Self.channel()
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT"), isHEAD: false))
        try channel.writeInbound(Self.framed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
        #expect(recorder.events == ["responder 99", "head", "body"])
        channel.pipeline.fireChannelInactive()
        #expect(recorder.events.last == "error: connection closed before the end of the response body")
    }

    @Test func aGoodbyeAfterAResponseInTheSameReadComesAfterItsEnd() throws {
        let (channel, recorder) = try Self.channel()
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT"), isHEAD: false))
        var bytes = Self.framed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        bytes.writeBytes(KeelWire.goodbyeBytes)
        try channel.writeInbound(bytes)
        // "closing" at once (the connection must not be reused while the parts before the goodbye are delivered).
        #expect(recorder.events == ["closing", "responder 99", "head", "body", "end", "goodbye"])
    }

    @Test func aGoodbyeIsPassedOn() throws {
        let (channel, recorder) = try Self.channel()
        try channel.writeOutbound(UWSGIRequestPart.packet(ByteBuffer(string: "PKT"), isHEAD: false))
        try channel.writeInbound(ByteBuffer(bytes: KeelWire.goodbyeBytes))
        #expect(recorder.events == ["closing", "goodbye"])
    }
}
