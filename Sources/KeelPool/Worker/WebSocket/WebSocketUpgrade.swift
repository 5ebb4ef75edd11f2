import KeelApp
import NIOCore
import NIOWebSocket

/// Turning a connection that answered 101 into a WebSocket: NIO's frame decoder and encoder and a
/// `WebSocketSession` join the pipeline at `position`; bytes already read past the handshake go to the decoder.
enum WebSocketUpgrade {
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
