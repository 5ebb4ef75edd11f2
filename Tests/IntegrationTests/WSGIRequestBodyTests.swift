import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// wsgi.input on --http-socket: the app runs at the request head and reads the body as it arrives,
/// through a bounded queue (the connection stops reading while it is full).
@Suite("WSGI request body over --http-socket", .timeLimit(.minutes(2)))
struct WSGIRequestBodyTests {
    static func postHead(_ target: String, length: Int, close: Bool = false) -> String {
        "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n" + (close ? "Connection: close\r\n" : "")
            + "\r\n"
    }

    /// One thread: the app runs on the worker's body thread, not inline on the loop that fills its queue.
    @Test(arguments: ["read_chunks", "echo_read", "echo_lines", "echo_iter", "echo_all"])
    func oneMebibyteIsByteExactWithOneThread(app: String) throws {
        let wsgi = try WSGIPool(app, ["--threads", "1"])
        var body = testBytes(count: 1 << 20, seed: 7)
        for index in stride(from: 70, to: body.count, by: 1021) { body[index] = UInt8(ascii: "\n") }
        let reply = try HTTPClient.request(port: wsgi.port, method: "POST", "/up", body: body)
        #expect(reply.status == 200)
        let same = reply.body == body
        #expect(same)
        #expect(!wsgi.log.contains("Traceback"))
        try wsgi.pool.stop()
    }

    @Test func theAppAnswersBeforeTheClientHasSentTheBody() throws {
        let wsgi = try WSGIPool("first_ten", ["--threads", "2"])
        let body = testBytes(count: 100_000, seed: 9)
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write(Self.postHead("/ten", length: body.count))
        try socket.write(Array(body[..<10]))
        // Only 10 of 100,000 bytes are sent: a response now can only come from a streamed body.
        let reader = HTTPResponseReader(socket)
        let early = try reader.next()
        #expect(early.status == 200)
        let firstTen = early.body == Array(body[..<10])
        #expect(firstTen)
        // The rest is read and dropped, so the next request on the connection is framed right.
        try socket.write(Array(body[10...]))
        try socket.write("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        let next = try reader.next()
        #expect(next.status == 200)
        #expect(next.body.isEmpty)
        try wsgi.pool.stop()
    }

    /// wsgi.input (a Swift type) answers every call as `io.BufferedReader` does over the same bytes, on both sockets.
    @Test(arguments: [false, true]) func inputFollowsIOsSemantics(uwsgi: Bool) throws {
        let body = Array(String(repeating: "first line\nsecond\n\nfourth line is longer\nx", count: 3000).utf8)
        for app in ["input_semantics", "input_readinto"] {
            let wsgi = try WSGIPool(app, uwsgi: uwsgi, ["--threads", "2"])
            let reply: HTTPReply
            if uwsgi {
                let raw = try UWSGIClient.exchange(
                    path: wsgi.pool.socketPath!,
                    vars: UWSGIClient.vars(method: "POST", uri: "/", contentLength: body.count), body: body)
                reply = try UWSGIClient.parse(raw)
            } else {
                reply = try HTTPClient.request(port: wsgi.port, method: "POST", "/", body: body)
            }
            #expect(reply.status == 200)
            if app == "input_semantics" {
                let seen = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
                #expect(seen["same"] as? Bool == true, "\(seen)")
            } else {
                #expect(reply.text == "same")
            }
            #expect(!wsgi.log.contains("AssertionError"))
            try wsgi.pool.stop()
        }
    }

    @Test func aFastUploadToASlowAppDoesNotGrowTheWorker() throws {
        let wsgi = try WSGIPool("slow_reader", ["--threads", "2"])
        #expect(try HTTPClient.request(port: wsgi.port, method: "POST", "/warm", body: testBytes(count: 1 << 20)).status == 200)
        let worker = try #require(wsgi.pool.workers.first)
        let baseline = try #require(Harness.residentKiB(worker))
        let total = 64 << 20
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write(Self.postHead("/slow", length: total, close: true))
        let mebibyte = testBytes(count: 1 << 20, seed: 13)
        var peak = baseline
        for _ in 0..<64 {
            try socket.write(mebibyte)
            peak = max(peak, Harness.residentKiB(worker) ?? 0)
        }
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.text == "read \(total) bytes\n")
        #expect(peak - baseline < 16 * 1024, "the worker grew by \(peak - baseline) KiB during a 64 MiB upload")
        try wsgi.pool.stop()
    }

    @Test func aClientGoneMidBodyIsAnOSErrorAndTheWorkerGoesOn() throws {
        let wsgi = try WSGIPool("read_until_cut", ["--threads", "2"])
        let pids = wsgi.pool.workers
        do {
            let socket = try TestSocket(tcpPort: wsgi.port)
            try socket.write(Self.postHead("/cut", length: 1 << 20))
            try socket.write(testBytes(count: 100_000))
        }
        try Harness.waitUntil("the app to see the body end") { wsgi.log.contains("body ended after") }
        #expect(wsgi.log.contains("of 1048576 bytes: OSError"))
        #expect(try HTTPClient.get(port: wsgi.port, "/after").status == 200)
        #expect(wsgi.pool.workers == pids)
        try wsgi.pool.stop()
    }

    @Test func aChunkedUploadIsDechunkedWithoutContentLength() throws {
        let wsgi = try WSGIPool("echo_all", ["--threads", "2"])
        let body = testBytes(count: 300_000, seed: 17)
        var request = Array("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8)
        var offset = 0
        var size = 1
        while offset < body.count {
            let end = min(body.count, offset + size)
            request += Array((String(end - offset, radix: 16) + "\r\n").utf8) + body[offset..<end] + Array("\r\n".utf8)
            offset = end
            size = size * 3 + 7
        }
        request += Array("0\r\n\r\n".utf8)
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write(request)
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.status == 200)
        #expect(reply.header("X-Content-Length") == "absent")
        let same = reply.body == body
        #expect(same)
        try wsgi.pool.stop()
    }

    @Test func bodiesOverLimitPostAre413() throws {
        let wsgi = try WSGIPool("echo_all", ["--threads", "2", "--limit-post", "100000"])
        let declared = try HTTPClient.request(port: wsgi.port, method: "POST", "/d", body: testBytes(count: 100_001))
        #expect(declared.status == 413)
        // A chunked body is refused when it crosses the limit, while the app is reading it.
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in 0..<4 {
            // The worker may close before the last chunks: writes after the 413 can fail.
            do { try socket.write(Array("c350\r\n".utf8) + testBytes(count: 50_000) + Array("\r\n".utf8)) } catch { break }
        }
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.status == 413)
        #expect(try HTTPClient.request(port: wsgi.port, method: "POST", "/ok", body: testBytes(count: 1000)).status == 200)
        try wsgi.pool.stop()
    }

    /// `ignore_body` answers while the body still arrives (it is skipped); `ignore_body_late` once all
    /// of it is queued unread: a body of exactly the queue's capacity pauses the connection at its end,
    /// which must read again for the next request.
    @Test(arguments: [("ignore_body", 1 << 20), ("ignore_body_late", 256 * 1024)])
    func twoPostsOnOneConnectionWhenTheAppReadsNoneOfTheFirst(app: String, size: Int) throws {
        let wsgi = try WSGIPool(app, ["--threads", "1"])
        let body = testBytes(count: size, seed: 19)
        let socket = try TestSocket(tcpPort: wsgi.port)
        let reader = HTTPResponseReader(socket)
        try socket.write(Array(Self.postHead("/one", length: body.count).utf8) + body)
        #expect(try reader.next().text == "ignored \(body.count) bytes\n")
        try socket.write(Array(Self.postHead("/two", length: body.count, close: true).utf8) + body)
        #expect(try reader.next().text == "ignored \(body.count) bytes\n")
        try wsgi.pool.stop()
    }
}
