import NIOCore
import NIOHTTP1

/// A response keel produces itself (errors, fixed responses, redirects, static files), written in one go.
struct Reply {
    enum Body {
        case none
        case buffer(ByteBuffer)
        /// These bytes of the file, sent with sendfile; the file is held until the write completes.
        case file(StaticFile, Range<Int>)
    }

    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: Body

    /// Statuses after which the rest of the connection cannot be trusted (framing unknown or body unread).
    var closesConnection: Bool {
        switch status.code {
        case 400, 408, 413, 431: true
        default: false
        }
    }

    static func text(_ status: HTTPResponseStatus, _ text: String, contentType: String) -> Reply {
        let body = ByteBuffer(string: text)
        return Reply(
            status: status,
            headers: ["Content-Type": contentType, "Content-Length": String(body.readableBytes)],
            body: .buffer(body))
    }

    /// keel's own error answers: a short text body naming the status.
    static func plain(_ status: HTTPResponseStatus, _ text: String) -> Reply {
        .text(status, text, contentType: "text/plain; charset=utf-8")
    }

    static func redirect(_ status: HTTPResponseStatus, _ location: String) -> Reply {
        var reply = Reply.text(status, "\(status.code) \(status.reasonPhrase): \(location)\n", contentType: "text/plain; charset=utf-8")
        reply.headers.add(name: "Location", value: location)
        return reply
    }
}
