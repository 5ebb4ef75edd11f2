import KeelApp
import NIOCore
import Synchronization
import Testing

/// The exchange between a connection's loop and an async app's loop, without either: what each side gets, when the
/// app is told, and the backpressure both ways.
@Suite struct AsyncExchangeTests {
    /// Records what the exchange asks of its connection.
    final class RecordingConnection: AsyncConnection {
        let calls = Mutex<[String]>([])
        func send(head: AsyncResponseHead?, body: ByteBuffer, more: Bool, for exchange: AsyncExchange) {
            calls.withLock { $0.append("send \(head.map { String($0.status) } ?? "-") \(body.readableBytes) \(more)") }
        }
        func fail(for exchange: AsyncExchange) { calls.withLock { $0.append("fail") } }
        func resumeReading() { calls.withLock { $0.append("resume") } }
        func acceptWebSocket(subprotocol: String?, headers: [(name: String, value: String)], for exchange: AsyncExchange) {
            calls.withLock { $0.append("accept") }
        }
        func sendWebSocket(_ message: WebSocketOutbound, for exchange: AsyncExchange) {
            calls.withLock { $0.append("ws \(message.byteCount)") }
        }
        func endWebSocket(failed: Bool, for exchange: AsyncExchange) { calls.withLock { $0.append("end \(failed)") } }
        var recorded: [String] { calls.withLock { $0 } }
    }

    /// What the app was told, in order.
    final class Events: Sendable {
        private let list = Mutex<[AsyncEvent]>([])
        func append(_ event: AsyncEvent) { list.withLock { $0.append(event) } }
        func withLock<T>(_ body: ([AsyncEvent]) -> T) -> T { list.withLock { body($0) } }
    }

    static func make(bodyExpected: Bool) -> (AsyncExchange, RecordingConnection, Events) {
        let connection = RecordingConnection()
        let exchange = AsyncExchange(
            id: 1, request: Request(vars: [("REQUEST_METHOD", "POST")]), connection: connection, bodyExpected: bodyExpected)
        let events = Events()
        exchange.setNotify { _, event in events.append(event) }
        return (exchange, connection, events)
    }

    static func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: 0x61, count: count) }

    @Test func aRequestWithoutABodyReadsOneEmptyFinalChunkThenWaits() {
        let (exchange, _, events) = Self.make(bodyExpected: false)
        guard case .bytes(let first, let more) = exchange.readBody() else { Issue.record("no body"); return }
        #expect(first.readableBytes == 0 && !more)
        guard case .wait = exchange.readBody() else { Issue.record("a second read should wait"); return }
        exchange.connectionClosed()
        #expect(events.withLock { $0 } == [.disconnect], "the waiting app learns the client left")
        guard case .disconnected = exchange.readBody() else { Issue.record("after the close: disconnected"); return }
    }

    @Test func bodyChunksAreJoinedAndTheAppIsToldOnlyWhenItWaits() {
        let (exchange, connection, events) = Self.make(bodyExpected: true)
        #expect(!exchange.appendBody(Self.bytes(10)))
        #expect(events.withLock { $0 }.isEmpty, "nobody waited: no wake-up")
        #expect(!exchange.appendBody(Self.bytes(5)))
        guard case .bytes(let joined, let more) = exchange.readBody() else { Issue.record("bytes expected"); return }
        #expect(joined.readableBytes == 15 && more)
        guard case .wait = exchange.readBody() else { Issue.record("wait expected"); return }
        exchange.endBody()
        #expect(events.withLock { $0 } == [.body])
        guard case .bytes(let last, let moreAfterTheEnd) = exchange.readBody() else { Issue.record("the end expected"); return }
        #expect(last.readableBytes == 0 && !moreAfterTheEnd)
        #expect(connection.recorded.isEmpty)
    }

    @Test func aFullBodyQueuePausesTheConnectionUntilTheAppReads() {
        let (exchange, connection, _) = Self.make(bodyExpected: true)
        #expect(!exchange.appendBody(Self.bytes(200 * 1024)))
        #expect(exchange.appendBody(Self.bytes(100 * 1024)), "over 256 KiB: stop reading")
        _ = exchange.readBody()
        #expect(connection.recorded == ["resume"])
    }

    @Test func sendsPastTheHighWaterMarkAskTheAppToWaitUntilWritten() {
        let (exchange, connection, events) = Self.make(bodyExpected: false)
        guard case .sent = exchange.send(head: AsyncResponseHead(status: 200, headers: []), body: Self.bytes(100 * 1024), more: true)
        else { Issue.record("first send"); return }
        guard case .wait = exchange.send(head: nil, body: Self.bytes(200 * 1024), more: true) else {
            Issue.record("over 256 KiB unwritten: wait"); return
        }
        #expect(exchange.isBlocked)
        exchange.written(100 * 1024)
        #expect(events.withLock { $0 }.isEmpty, "still over the low-water mark")
        exchange.written(150 * 1024)
        #expect(events.withLock { $0 } == [.writable])
        #expect(!exchange.isBlocked)
        #expect(connection.recorded == ["send 200 102400 true", "send - 204800 true"])
        exchange.connectionClosed()
        guard case .disconnected = exchange.send(head: nil, body: Self.bytes(1), more: false) else {
            Issue.record("a send after the client left"); return
        }
        #expect(connection.recorded.count == 3 && connection.recorded.last == "fail", "the end of a response that could not go out still ends the request")
    }

    @Test func webSocketMessagesQueueInOrderAndTheCloseRepeats() {
        let (exchange, connection, events) = Self.make(bodyExpected: false)
        guard case .wait = exchange.readWebSocket() else { Issue.record("wait first"); return }
        _ = exchange.receiveWebSocket(.text("hi"))
        _ = exchange.receiveWebSocket(.binary(Self.bytes(3)))
        _ = exchange.receiveWebSocket(.closed(code: 1000, reason: "bye"))
        #expect(events.withLock { $0 } == [.body])
        guard case .message(.text("hi")) = exchange.readWebSocket() else { Issue.record("text"); return }
        guard case .message(.binary(let data)) = exchange.readWebSocket(), data.readableBytes == 3 else {
            Issue.record("binary"); return
        }
        guard case .message(.closed(1000, "bye")) = exchange.readWebSocket() else { Issue.record("close"); return }
        guard case .message(.closed(1000, _)) = exchange.readWebSocket() else { Issue.record("close again"); return }
        guard case .disconnected = exchange.sendWebSocket(.text(Self.bytes(1))) else {
            Issue.record("no sends after the close"); return
        }
        #expect(connection.recorded.isEmpty)
    }
}
