import KeelSystem
import NIOCore
import NIOHTTP1

/// The headers keel puts on every final response, whoever produced it (a route, an upstream, a malformed request's
/// 400, a timeout's 408): `Date` (RFC 9110 §6.6.1 asks it of an origin with a clock), `Server` (nginx's
/// `server_tokens`), and on TLS listeners with `[tls] hsts` a `Strict-Transport-Security` (nginx's `add_header …
/// always`). A value the upstream set itself is kept, as nginx's uwsgi module passes them. Applied where the head
/// is made (ProxyHandler), not by a handler of its own: each pass-through handler cost
/// every request 1.5-2.5 µs (bench notes, issue 14).
struct ResponseStamp {
    let clock: HTTPDateClock
    let server: String
    let hsts: String?

    init(clock: HTTPDateClock, serverTokens: Bool, hsts: String?) {
        self.clock = clock
        self.server = serverTokens ? "keel/\(KeelVersion.current)" : "keel"
        self.hsts = hsts
    }

    func apply(to headers: inout HTTPHeaders) {
        if !headers.contains(name: "date") { headers.add(name: "Date", value: clock.now) }
        if !headers.contains(name: "server") { headers.add(name: "Server", value: server) }
        if let hsts, !headers.contains(name: "strict-transport-security") {
            headers.add(name: "Strict-Transport-Security", value: hsts)
        }
    }
}

extension ResponseStamp {
    /// keel's last word on a connection whose request never reached a route (a malformed head, a head that timed
    /// out): a short text answer, stamped, then the connection closes once it has been written.
    func answerAndClose(_ status: HTTPResponseStatus, _ message: String, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(
            version: .http1_1, status: status,
            headers: ["Connection": "close", "Content-Type": "text/plain", "Content-Length": String(message.utf8.count)])
        apply(to: &head.headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: message)))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// The version `Server` and `--version` report.
public enum KeelVersion {
    public static let current = BuildInfo.version
}
