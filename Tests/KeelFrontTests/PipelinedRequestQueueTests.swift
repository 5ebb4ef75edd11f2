import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import KeelFront

/// Counts the read() calls that reach the channel's head.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// Records the request parts that reach the proxy's place in the pipeline.
final class PartRecorder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    var parts: [String] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): parts.append("head \(head.uri)")
        case .body: parts.append("body")
        case .end: parts.append("end")
        }
    }
}

@Suite struct PipelinedRequestQueueTests {
    static func channel() throws -> (EmbeddedChannel, ReadCounter, PartRecorder) {
        let counter = ReadCounter()
        let recorder = PartRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(PipelinedRequestQueue())
        try channel.pipeline.syncOperations.addHandler(recorder)
        return (channel, counter, recorder)
    }

    static func request(_ channel: EmbeddedChannel, _ uri: String, body: Bool = false) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)))
        if body { try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "x"))) }
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
    }

    static func respond(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    @Test func aClientWaitingForItsAnswerIsNeverPausedMidResponse() throws {
        let (channel, counter, recorder) = try Self.channel()
        try Self.request(channel, "/a", body: true)
        channel.read()  // what NIO's autoRead does after each read: it must reach the socket while the answer is pending
        #expect(counter.reads == 1)
        try Self.respond(channel)
        #expect(recorder.parts == ["head /a", "body", "end"])
    }

    @Test func aPipelinedRequestWaitsForTheAnswerBeforeIt() throws {
        let (channel, _, recorder) = try Self.channel()
        try Self.request(channel, "/a")
        try Self.request(channel, "/b", body: true)
        #expect(recorder.parts == ["head /a", "end"])
        try Self.respond(channel)
        #expect(recorder.parts == ["head /a", "end", "head /b", "body", "end"])
        try Self.respond(channel)
    }

    @Test func readsPauseOnlyWhenTooManyRequestsQueueAndResumeAsTheyAreAnswered() throws {
        let (channel, counter, recorder) = try Self.channel()
        for index in 0...PipelinedRequestQueue.maxQueuedRequests { try Self.request(channel, "/\(index)") }
        channel.read()
        #expect(counter.reads == 0, "\(PipelinedRequestQueue.maxQueuedRequests) queued: reading pauses")
        try Self.respond(channel)
        #expect(counter.reads == 1, "one answered: reading resumes")
        for _ in 0..<PipelinedRequestQueue.maxQueuedRequests { try Self.respond(channel) }
        #expect(recorder.parts.filter { $0.hasPrefix("head") }.count == PipelinedRequestQueue.maxQueuedRequests + 1)
    }

    @Test func aGracefulStopClosesAnIdleConnectionAtOnceAndABusyOneAfterItsAnswer() throws {
        let (idle, _, _) = try Self.channel()
        try idle.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        #expect(idle.isActive)
        idle.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!idle.isActive)

        let (busy, _, recorder) = try Self.channel()
        try busy.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try Self.request(busy, "/a")
        try Self.request(busy, "/b")
        busy.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(busy.isActive)
        try Self.respond(busy)
        busy.embeddedEventLoop.run()
        #expect(!busy.isActive, "closed after the response in flight")
        #expect(recorder.parts == ["head /a", "end"], "the queued request is dropped, not answered half")
    }
}
