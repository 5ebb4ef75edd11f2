import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import KeelTune

/// The load generator's connection handler on an EmbeddedChannel: one request at a time, the next when the answer
/// ends (closed loop), and every failure counted with what it was.
@Suite struct LoadConnectionHandlerTests {
    struct Connection {
        let channel = EmbeddedChannel()
        let state: LoadState

        init() throws {
            state = LoadState(
                loop: channel.eventLoop, port: 8000, paths: [WeightedPath(weight: 1, path: "/sleep?s=0.05")],
                pattern: .closed(connections: 1))
            state.beginWindow()
            try channel.pipeline.syncOperations.addHandler(LoadConnectionHandler(state: state))
            channel.pipeline.fireChannelActive()
        }

        func sentRequest() throws -> HTTPRequestHead? {
            guard case .head(let head) = try channel.readOutbound(as: HTTPClientRequestPart.self) else { return nil }
            guard case .end = try channel.readOutbound(as: HTTPClientRequestPart.self) else { return nil }
            return head
        }

        func answer(_ status: HTTPResponseStatus) throws {
            try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: status)))
            try channel.writeInbound(HTTPClientResponsePart.end(nil))
        }
    }

    @Test func sendsTheNextRequestWhenTheAnswerEnds() throws {
        let connection = try Connection()
        let first = try #require(try connection.sentRequest())
        #expect(first.uri == "/sleep?s=0.05")
        #expect(first.headers["Host"] == ["127.0.0.1:8000"])
        #expect(try connection.sentRequest() == nil)
        try connection.answer(.ok)
        #expect(try connection.sentRequest() != nil)
        try connection.answer(.ok)
        let result = connection.state.endWindow()
        #expect(result.completed == 2)
        #expect(result.latencies.count == 2)
        #expect(result.errors == 0)
        connection.state.stop()
    }

    @Test func anErrorStatusIsAFailureAndTheLoadGoesOn() throws {
        let connection = try Connection()
        _ = try connection.sentRequest()
        try connection.answer(.notFound)
        #expect(try connection.sentRequest() != nil)
        let result = connection.state.endWindow()
        #expect(result.completed == 0)
        #expect(result.errors == 1)
        #expect(result.lastError == "HTTP 404")
        connection.state.stop()
    }

    @Test func aConnectionClosedBeforeTheAnswerIsAFailure() throws {
        let connection = try Connection()
        _ = try connection.sentRequest()
        connection.channel.pipeline.fireChannelInactive()
        let result = connection.state.endWindow()
        #expect(result.errors == 1)
        #expect(result.lastError == "connection closed before the answer")
        connection.state.stop()
    }

    @Test func nothingIsRecordedOutsideTheWindow() throws {
        let connection = try Connection()
        _ = connection.state.endWindow()
        _ = try connection.sentRequest()
        try connection.answer(.ok)
        connection.state.beginWindow()
        #expect(connection.state.endWindow().completed == 0)
        connection.state.stop()
    }
}
