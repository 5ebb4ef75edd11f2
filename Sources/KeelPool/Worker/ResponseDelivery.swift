import KeelApp
import NIOCore
import UWSGI

/// How one response reaches one connection. Called in order from the thread that runs the app; the
/// uwsgi transport writes with blocking calls, the HTTP one hands each step to the event loop.
protocol ResponseTransport: BodyWriter {
    /// A complete response in one step (the common case: one hop to the event loop, one send).
    func writeWhole(status: Int, reason: String?, headers: [(name: String, value: String)], body: ByteBuffer)
    /// `contentLength` nil: the body is framed by the transport (chunked, or ended by the close).
    func writeHead(status: Int, reason: String?, headers: [(name: String, value: String)], contentLength: Int?) throws
    /// `length` bytes of `file` from its offset; the transport keeps `file` until they are sent.
    func writeFile(_ file: ResponseFile, length: Int) throws
    /// The body is complete.
    func end()
    /// The response cannot be finished (the app failed mid-body): close without completing it.
    func abort()
}

/// Sends an app's response through a transport, the same way on both kinds of socket: validates the
/// head, frames the body, runs streaming and deferred producers, and turns failures into a 500 (before
/// the head) or a cut connection (after it).
struct ResponseDelivery<Transport: ResponseTransport> {
    let transport: Transport
    let requestLine: String

    func send(_ response: Response) {
        switch response.body {
        case .bytes(let bytes):
            transport.writeWhole(
                status: response.status, reason: response.reason, headers: response.headers.withoutFraming, body: bytes)
        case .file(let file):
            // A declared Content-Length shorter than the file caps what is sent (PEP 3333: never more).
            let declared = response.header("Content-Length").flatMap { Int($0) }
            let length = min(file.length, declared ?? file.length)
            do {
                try transport.writeHead(
                    status: response.status, reason: response.reason, headers: response.headers.withoutFraming,
                    contentLength: length)
                try transport.writeFile(file, length: length)
                transport.end()
            } catch {
                WorkerLog.error("file response of \(requestLine) failed: \(error)")
                transport.abort()
            }
        case .stream(let produce):
            let framing = AppRunner.streamFraming(of: response)
            do {
                try transport.writeHead(
                    status: response.status, reason: response.reason, headers: framing.headers,
                    contentLength: framing.contentLength)
                try produce(transport)
                transport.end()
            } catch {
                WorkerLog.error("streamed response of \(requestLine) failed: \(error)")
                transport.abort()
            }
        case .deferred(let produce):
            let writer = DeferredHeadWriter(transport: transport)
            let replacement: Response?
            do {
                replacement = try produce(writer)
            } catch {
                if writer.headSent {
                    WorkerLog.error("streamed response of \(requestLine) failed: \(error)")
                    transport.abort()
                } else {
                    send(AppRunner.errorResponse(for: error, requestLine: requestLine))
                }
                return
            }
            if writer.headSent {
                transport.end()
            } else if let replacement {
                send(AppRunner.validated(replacement, requestLine: requestLine))
            } else {
                WorkerLog.error("app answered \(requestLine) without a response head: sent 500 instead")
                send(Response(status: 500, "Internal Server Error\n"))
            }
        }
    }
}

/// The `ResponseWriter` a deferred producer gets: checks the head like any response's, sends it once.
final class DeferredHeadWriter<Transport: ResponseTransport>: ResponseWriter {
    let transport: Transport
    private(set) var headSent = false

    init(transport: Transport) { self.transport = transport }

    struct InvalidHead: Error, CustomStringConvertible {
        var description: String
    }

    struct HeadNotSent: Error, CustomStringConvertible {
        var description: String { "body bytes written before the response head" }
    }

    func writeHead(status: Int, reason: String?, headers: [(name: String, value: String)]) throws {
        if let problem = ResponseHeadCheck.problem(status: status, reason: reason, headers: headers) {
            throw InvalidHead(description: "the response head has \(problem)")
        }
        let framing = AppRunner.streamFraming(of: Response(status: status, headers: headers, body: .bytes(ByteBuffer())))
        headSent = true
        try transport.writeHead(
            status: status, reason: reason, headers: framing.headers, contentLength: framing.contentLength)
    }

    func write(_ bytes: ByteBuffer) throws {
        guard headSent else { throw HeadNotSent() }
        try transport.write(bytes)
    }
}

/// What makes a response head unsendable: a status outside 100...999, a reason phrase or header
/// value with CR, LF or another control character, or a header name that is not an HTTP token
/// (RFC 9110 §5.1, §5.5): any of them could smuggle extra headers.
enum ResponseHeadCheck {
    static func problem(status: Int, reason: String?, headers: [(name: String, value: String)]) -> String? {
        guard (100...999).contains(status) else { return "an impossible status \(status)" }
        if let reason, reason.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7f }) {
            return "a control character in the reason phrase \(reason.debugDescription)"
        }
        for header in headers {
            if header.name.isEmpty || !header.name.utf8.allSatisfy(UWSGIResponseParser.isTokenByte) {
                return "an invalid header name \(header.name.debugDescription)"
            }
            if header.value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
                return "an invalid header: the \(header.name) value holds CR, LF or NUL"
            }
        }
        return nil
    }

    /// True when the app's head cannot go out: the problem is logged with the request, and the caller answers 500.
    static func refuses(
        status: Int, reason: String?, headers: [(name: String, value: String)], of requestLine: String,
        what: String = "answered"
    ) -> Bool {
        guard let problem = problem(status: status, reason: reason, headers: headers) else { return false }
        WorkerLog.error("app \(what) \(requestLine) with \(problem): sent 500 instead")
        return true
    }
}
