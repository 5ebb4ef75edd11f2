import KeelApp
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// RFC 6455's opening handshake on the request's CGI vars, so the HTTP socket and uwsgi (behind keel or nginx) check
/// it the same way: which requests ask for a WebSocket, what makes one a 400, and the 101's headers.
enum WebSocketHandshake {
    /// An `Upgrade: websocket` request (the app then gets a websocket scope, or the client a 400).
    static func isUpgrade(_ request: Request) -> Bool {
        guard let upgrade = request["HTTP_UPGRADE"] else { return false }
        return upgrade.split(separator: ",").contains { $0.trimmingSpaces.lowercased() == "websocket" }
    }

    /// Why the handshake is refused (400), or nil.
    static func problem(_ request: Request) -> String? {
        if request.method != "GET" { return "a WebSocket handshake must be a GET, not \(request.method)" }
        if let proto = request["SERVER_PROTOCOL"], proto != "HTTP/1.1" {
            return "a WebSocket handshake needs HTTP/1.1, not \(proto)"
        }
        let connection = request["HTTP_CONNECTION"] ?? ""
        if !connection.split(separator: ",").contains(where: { $0.trimmingSpaces.lowercased() == "upgrade" }) {
            return "the WebSocket handshake lacks Connection: upgrade"
        }
        guard request["HTTP_SEC_WEBSOCKET_VERSION"] == "13" else {
            return "Sec-WebSocket-Version must be 13"
        }
        guard let key = request["HTTP_SEC_WEBSOCKET_KEY"], decodedLength(key.trimmingSpaces) == 16 else {
            return "Sec-WebSocket-Key must be 16 bytes in base64"
        }
        return nil
    }

    struct RefusedHeaders: Error {}

    /// The 101's headers (Upgrade, Connection, Sec-WebSocket-Accept) with the app's own, computed by NIO's upgrader;
    /// fails (logged here) when the app's headers would not pass as a response head's (CR/LF, names).
    static func accept(
        _ request: Request, subprotocol: String?, extra: [(name: String, value: String)], channel: any Channel
    ) -> EventLoopFuture<[(name: String, value: String)]> {
        if ResponseHeadCheck.refuses(
            status: 101, reason: nil, headers: extra, of: "the WebSocket \(request.requestLine)", what: "accepted")
        {
            return channel.eventLoop.makeFailedFuture(RefusedHeaders())
        }
        var headers = HTTPHeaders()
        headers.add(name: "Sec-WebSocket-Key", value: (request["HTTP_SEC_WEBSOCKET_KEY"] ?? "").trimmingSpaces)
        headers.add(name: "Sec-WebSocket-Version", value: "13")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: request.uri, headers: headers)
        var initial = HTTPHeaders(extra.filter { !["content-length", "transfer-encoding", "connection", "upgrade"].contains($0.name.lowercased()) })
        if let subprotocol { initial.replaceOrAdd(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(initial) },
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
        return upgrader.buildUpgradeResponse(channel: channel, upgradeRequest: head, initialResponseHeaders: [:])
            .map { fields in fields.map { (name: $0.name, value: $0.value) } }
    }

    /// The byte count a base64 text decodes to, or nil when it is not base64.
    static func decodedLength(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count % 4 == 0 else { return nil }
        var padding = 0
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding > 0 { return nil }
            case UInt8(ascii: "="):
                guard index >= bytes.count - 2 else { return nil }
                padding += 1
            default:
                return nil
            }
        }
        return bytes.count / 4 * 3 - padding
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
