import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

@testable import KeelFront

/// The two small handlers of the metrics and status work, on EmbeddedChannel: the `/metrics` answerer and the
/// reader of a pool's stats document.
@Suite struct ObservabilityHandlerTests {
    /// Runs the embedded loop until the handler has written a whole response (the scrape waits on other loops).
    static func response(from channel: EmbeddedChannel, seconds: Double = 5) throws -> (HTTPResponseHead, String) {
        var head: HTTPResponseHead?
        var body = ""
        let deadline = NIODeadline.now() + .milliseconds(Int64(seconds * 1000))
        while NIODeadline.now() < deadline {
            channel.embeddedEventLoop.run()
            while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
                switch part {
                case .head(let received): head = received
                case .body(.byteBuffer(let buffer)): body += String(buffer: buffer)
                case .body: break
                case .end: return (try #require(head), body)
                }
            }
            usleep(1000)
        }
        throw ChannelError.operationUnsupported
    }

    @Test func metricsHandlerAnswersTheExpositionAnd404Otherwise() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let configuration = FrontConfiguration(routes: [
            .init(pathPrefix: "/", action: .fixed(status: 200, body: "", contentType: "text/plain"))
        ])
        let server = FrontServer(configuration: configuration, tls: nil, accessLog: nil, group: group, metrics: FrontMetrics())
        let channel = EmbeddedChannel(handler: MetricsHTTPHandler(server: server))
        defer { _ = try? channel.finish() }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()

        try channel.writeInbound(HTTPServerRequestPart.head(.init(version: .http1_1, method: .GET, uri: "/metrics?x=1")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        let (head, body) = try Self.response(from: channel)
        #expect(head.status == .ok)
        #expect(head.headers["Content-Type"] == ["text/plain; version=0.0.4; charset=utf-8"])
        #expect(head.headers["Content-Length"] == [String(body.utf8.count)])
        #expect(body.contains("# TYPE keel_http_requests_total counter"))
        #expect(body.contains(#"keel_http_requests_total{route="/",method="GET",status="2xx"} 0"#))
        #expect(body.contains("keel_connections_active 0.0"))
        #expect(channel.isActive, "a keep-alive scrape keeps its connection")

        try channel.writeInbound(HTTPServerRequestPart.head(.init(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        let (missing, text) = try Self.response(from: channel)
        #expect(missing.status == .notFound)
        #expect(text.contains("/metrics"))
    }

    static func reader(timeout: TimeAmount = .seconds(1)) throws -> (EmbeddedChannel, EventLoopFuture<String>) {
        let channel = EmbeddedChannel()
        let promise = channel.embeddedEventLoop.makePromise(of: String.self)
        try channel.pipeline.syncOperations.addHandler(DocumentReader(promise: promise, timeout: timeout))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9191)).wait()
        return (channel, promise.futureResult)
    }

    @Test func readerCollectsTheDocumentUpToTheClose() throws {
        let (channel, document) = try Self.reader()
        try channel.writeInbound(ByteBuffer(string: "{\n  \"workers\": ["))
        try channel.writeInbound(ByteBuffer(string: "]\n}\n"))
        try channel.close().wait()
        #expect(try document.wait() == "{\n  \"workers\": []\n}\n")
    }

    @Test func readerRefusesWhatIsNotAJSONObject() throws {
        let (channel, document) = try Self.reader()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\n\r\n"))
        try channel.close().wait()
        #expect(throws: PoolStatsClient.Failure.self) { try document.wait() }
    }

    @Test func readerGivesUpAtTheDeadlineAndCloses() throws {
        let (channel, document) = try Self.reader(timeout: .milliseconds(800))
        try channel.writeInbound(ByteBuffer(string: "{\"workers\": ["))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(801))
        do {
            _ = try document.wait()
            Issue.record("a stuck stats server must fail the read")
        } catch let failure as PoolStatsClient.Failure {
            #expect(failure.description == "no whole answer within 800ms")
        }
        #expect(!channel.isActive)
    }
}
