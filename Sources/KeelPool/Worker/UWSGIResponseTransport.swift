import KeelApp
import NIOCore
import UWSGI

/// How a response goes out on a uwsgi connection: blocking writes, the head held back to go out with the first body
/// bytes in one send.
/// - Classic uwsgi (what nginx and uWSGI speak): a body without a declared length ends with the close.
/// - The keel wire (`frame` set): the response starts with the worker's frame and is always framed (Content-Length,
///   else chunked; no body for HEAD, 1xx, 204, 304), so the connection can carry the next request.
final class UWSGIResponseTransport: ResponseTransport {
    let connection: BlockingConnection
    /// HEAD: the head is sent, the body is not.
    let headOnly: Bool
    private let frame: KeelWire.Responder?
    /// The frame went out already, as soon as the request was read (a new connection's first request).
    private let frameSent: Bool
    private var pendingHead: ByteBuffer?
    private var chunked = false
    /// No body bytes go out (HEAD, and on the keel wire 1xx/204/304 too, whose answers keel reads as body-less).
    private var bodyless = false
    private var declaredLength: Int?
    private var bodyBytes = 0
    private var failed = false
    private var ended = false

    init(connection: BlockingConnection, headOnly: Bool, frame: KeelWire.Responder?, frameSent: Bool = false) {
        self.connection = connection
        self.headOnly = headOnly
        self.frame = frame
        self.frameSent = frameSent
    }

    /// The response went out whole and framed: the connection may carry another request.
    var isReusable: Bool {
        guard frame != nil, ended, !failed else { return false }
        if bodyless { return true }
        if let declaredLength { return bodyBytes == declaredLength }
        return true
    }

    func writeWhole(status: Int, reason: String?, headers: [(name: String, value: String)], body: ByteBuffer) {
        var out = ByteBuffer()
        bodyless = isBodyless(status)
        out.reserveCapacity(256 + (bodyless ? 0 : body.readableBytes))
        startHead(into: &out)
        let statusForbidsBody = !headOnly && bodyless
        HTTPResponseHeadWriter.write(
            status: status, reason: reason, headers: headers,
            contentLength: statusForbidsBody ? nil : body.readableBytes, chunked: false, into: &out)
        if !bodyless {
            var body = body
            out.writeBuffer(&body)
        }
        declaredLength = nil
        ended = true
        if !connection.writeAll(out) { failed = true }
    }

    func writeHead(status: Int, reason: String?, headers: [(name: String, value: String)], contentLength: Int?) {
        var out = ByteBuffer()
        bodyless = isBodyless(status)
        startHead(into: &out)
        let statusForbidsBody = !headOnly && bodyless
        chunked = frame != nil && contentLength == nil && !statusForbidsBody
        declaredLength = contentLength
        HTTPResponseHeadWriter.write(
            status: status, reason: reason, headers: headers, contentLength: statusForbidsBody ? nil : contentLength,
            chunked: chunked, into: &out)
        pendingHead = out
    }

    func write(_ bytes: ByteBuffer) throws {
        if bodyless { return try flushHead() }
        var bytes = bytes
        if let declaredLength, frame != nil, bodyBytes + bytes.readableBytes > declaredLength {
            // More than declared would desynchronise the wire: cut at the length and close afterwards.
            bytes = bytes.getSlice(at: bytes.readerIndex, length: max(0, declaredLength - bodyBytes))!
            failed = true
        }
        guard bytes.readableBytes > 0 else { return try flushHead() }
        bodyBytes += bytes.readableBytes
        var out = pendingHead.take() ?? ByteBuffer()
        if chunked {
            out.writeString(String(bytes.readableBytes, radix: 16))
            out.writeStaticString("\r\n")
            out.writeBuffer(&bytes)
            out.writeStaticString("\r\n")
        } else if out.readableBytes > 0 {
            out.writeBuffer(&bytes)
        } else {
            out = bytes
        }
        guard connection.writeAll(out) else {
            failed = true
            throw ClientGone()
        }
    }

    func writeFile(_ file: ResponseFile, length: Int) throws {
        try flushHead()
        if bodyless { return }
        bodyBytes += length
        guard connection.sendFile(file.descriptor, offset: file.offset, length: length) else {
            failed = true
            throw ClientGone()
        }
    }

    func end() {
        ended = true
        if chunked && !bodyless {
            var out = pendingHead.take() ?? ByteBuffer()
            out.writeStaticString("0\r\n\r\n")
            if !connection.writeAll(out) { failed = true }
            return
        }
        do { try flushHead() } catch { failed = true }
    }

    func abort() {
        pendingHead = nil
        failed = true
    }

    private func isBodyless(_ status: Int) -> Bool {
        headOnly || (frame != nil && (status < 200 || status == 204 || status == 304))
    }

    private func startHead(into out: inout ByteBuffer) {
        if let frame, !frameSent { KeelWire.writeResponseFrame(frame, into: &out) }
    }

    private func flushHead() throws {
        guard let out = pendingHead.take() else { return }
        guard connection.writeAll(out) else {
            failed = true
            throw ClientGone()
        }
    }
}

extension Optional {
    /// The value, leaving nil behind.
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}
