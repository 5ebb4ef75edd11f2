import KeelHTTP
import NIOCore
import NIOHTTP1

/// The CGI vars of a request on `--http-socket`: KeelHTTP's `CGIVars` (the builder keel's front uses for the uwsgi
/// wire), with keel-pool's own part: plain HTTP, an empty SCRIPT_NAME, the listener's name and port.
enum HTTPRequestVars {
    /// `bodyLength` nil: a chunked body still arriving (CONTENT_LENGTH "").
    static func make(
        head: HTTPRequestHead,
        target: RequestTarget,
        bodyLength: Int?,
        remote: SocketAddress?,
        server: (name: String, port: String)
    ) -> [(name: String, value: String)] {
        CGIVars.make(
            head: head, target: target, bodyLength: bodyLength.map(Int64.init),
            remote: (remote?.ipAddress ?? "", remote?.port.map(String.init) ?? ""), server: server, isTLS: false,
            scriptName: "")
    }
}
