import KeelApp
import NIOCore
import NIOWebSocket

/// Turning a connection that answered 101 into a WebSocket: NIO's frame decoder and encoder and a
/// `WebSocketSession` join the pipeline at `position`; bytes already read past the handshake go to the decoder.
enum WebSocketUpgrade {
    /// --ws-max-size's default, uvicorn's: 16 MiB per message (and per frame).
    static let defaultMaxMessageSize = 16 * 1024 * 1024

    static func install(
        exchange: AsyncExchange, maxMessageSize: Int, pipeline: ChannelPipeline.SynchronousOperations,
        position: ChannelPipeline.SynchronousOperations.Position
    ) throws -> WebSocketSession {
        let session = WebSocketSession(exchange: exchange, maxMessageSize: maxMessageSize)
        try pipeline.addHandlers(
            [ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxMessageSize)), WebSocketFrameEncoder(), session],
            position: position)
        return session
    }
}
