import Foundation
import NIOCore
import Testing
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// PEP 3333's streaming parts behind keel-pool: write() sent before it returns, wsgi.input read from
/// the connection (uwsgi sockets), wsgi.file_wrapper sent with sendfile, the status line as given.
@Suite("WSGI streaming", .timeLimit(.minutes(2)))
struct WSGIStreamingTests {
    /// A connection with one request sent on it: an HTTP GET, or a uwsgi packet.
    static func open(_ wsgi: WSGIPool, uwsgi: Bool, _ uri: String) throws -> TestSocket {
        if uwsgi {
            let socket = try TestSocket(unixPath: wsgi.pool.socketPath!)
            var packet = ByteBuffer()
            try UWSGIPacket.writeRequestHead(
                vars: UWSGIClient.vars(uri: uri).map { (name: $0.0, value: $0.1) }, into: &packet)
            try socket.write(Array(packet.readableBytesView))
            return socket
        }
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write("GET \(uri) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return socket
    }

    @Test(arguments: [false, true])
    func writeIsSentBeforeItReturns(uwsgi: Bool) throws {
        let wsgi = try WSGIPool("write_then_wait", http: !uwsgi, uwsgi: uwsgi, ["--threads", "2"])
        let marker = wsgi.appDirectory + "/release-marker"
        let socket = try Self.open(wsgi, uwsgi: uwsgi, "/w?marker=\(marker)")
        // The app is blocked until the marker exists, so these bytes can only come from a streamed write().
        var received: [UInt8] = []
        while !String(decoding: received, as: UTF8.self).contains("first\n") {
            let chunk = try socket.readSome()
            if chunk.isEmpty { break }
            received += chunk
        }
        let early = String(decoding: received, as: UTF8.self)
        #expect(early.hasPrefix("HTTP/1.1 200 Okay-ish\r\n"))
        #expect(early.contains("first\n"))
        #expect(!early.contains("released"))
        FileManager.default.createFile(atPath: marker, contents: Data())
        let all = early + String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(all.contains("released\n"))
        #expect(all.contains("last\n"))
        #expect(!all.contains("timed out"))
        #expect(!wsgi.log.contains("AssertionError"))
        try wsgi.pool.stop()
    }

    @Test(arguments: ["read_chunks", "echo_read", "echo_lines", "echo_iter"])
    func oneMebibyteUploadIsByteExactOnBothSockets(app: String) throws {
        let wsgi = try WSGIPool(app, uwsgi: true, ["--threads", "2"])
        var body = testBytes(count: 1 << 20, seed: 3)
        for index in stride(from: 50, to: body.count, by: 1013) { body[index] = UInt8(ascii: "\n") }
        let reply = try HTTPClient.request(port: wsgi.port, method: "POST", "/up", body: body)
        #expect(reply.status == 200)
        let sameOverHTTP = reply.body == body
        #expect(sameOverHTTP)
        // Bytes after CONTENT_LENGTH on the connection are not the body: reads stop at the length.
        let raw = try UWSGIClient.exchange(
            path: wsgi.pool.socketPath!, vars: UWSGIClient.vars(method: "POST", uri: "/up", contentLength: body.count),
            body: body + Array("TRAILING GARBAGE".utf8))
        let viaUWSGI = try UWSGIClient.parse(raw)
        #expect(viaUWSGI.status == 200)
        let sameOverUWSGI = viaUWSGI.body == body
        #expect(sameOverUWSGI)
        #expect(!wsgi.log.contains("AssertionError"))
        #expect(!wsgi.log.contains("Traceback"))
        try wsgi.pool.stop()
    }

    @Test func anUnreadBodyIsDrainedAndTheWorkerGoesOn() throws {
        let wsgi = try WSGIPool("ignore_body", uwsgi: true, ["--threads", "1"])
        let body = testBytes(count: 1 << 20, seed: 5)
        for _ in 0..<3 {
            let raw = try UWSGIClient.exchange(
                path: wsgi.pool.socketPath!,
                vars: UWSGIClient.vars(method: "POST", uri: "/i", contentLength: body.count), body: body)
            let reply = try UWSGIClient.parse(raw)
            #expect(reply.status == 200)
            #expect(String(decoding: reply.body, as: UTF8.self) == "ignored \(body.count) bytes\n")
            let overHTTP = try HTTPClient.request(port: wsgi.port, method: "POST", "/i", body: body)
            #expect(overHTTP.status == 200)
        }
        let pids = wsgi.pool.workers
        #expect(try HTTPClient.get(port: wsgi.port, "/after").status == 200)
        #expect(wsgi.pool.workers == pids)
        try wsgi.pool.stop()
    }

    @Test(arguments: [false, true])
    func fileWrapperSendsFiveMebibytesByteExact(uwsgi: Bool) throws {
        let wsgi = try WSGIPool("file_wrapper_raw", http: !uwsgi, uwsgi: uwsgi)
        let (payload, reply) = try wsgi.fetchFile(named: "five.bin", count: 5 << 20, seed: 11, uwsgi: uwsgi)
        #expect(reply.status == 200)
        #expect(reply.header("Content-Length") == String(payload.count))
        #expect(reply.body.count == payload.count)
        let same = reply.body == payload
        #expect(same)
        try wsgi.pool.stop()
    }

    @Test(arguments: [false, true])
    func theReasonPhraseIsSentAsGiven(uwsgi: Bool) throws {
        let wsgi = try WSGIPool("reason_phrase", http: !uwsgi, uwsgi: uwsgi)
        let raw = String(decoding: try Self.open(wsgi, uwsgi: uwsgi, "/r").readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 299 Okay-ish, with spaces\r\n"))
        #expect(raw.hasSuffix("reason kept\n"))
        try wsgi.pool.stop()
    }
}
