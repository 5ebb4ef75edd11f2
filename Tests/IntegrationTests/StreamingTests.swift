import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A body of unknown length: chunked on HTTP/1.1, close-delimited on uwsgi and HTTP/1.0.
@Suite("streamed responses", .timeLimit(.minutes(3)))  // bounds a hang; a queue behind blocking suites on the 2-thread pool can take ~60 s
struct StreamingTests {
    static func expected(chunks: Int, size: Int) -> [UInt8] {
        (0..<chunks).flatMap { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: size) }
    }

    @Test(arguments: [1, 2])
    func http11IsChunked(threads: Int) throws {
        let pool = try PoolUnderTest(["--app", "stream", "--threads", "\(threads)"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        let reader = HTTPResponseReader(socket)
        for _ in 0..<2 {  // the connection stays usable after a chunked body
            try socket.write("GET /?chunks=300&size=7000 HTTP/1.1\r\nHost: x\r\n\r\n")
            let reply = try reader.next()
            #expect(reply.status == 200)
            #expect(reply.header("Transfer-Encoding") == "chunked")
            #expect(reply.header("Content-Length") == nil)
            #expect(reply.body == Self.expected(chunks: 300, size: 7000))
        }
        try pool.stop()
    }

    @Test func http10IsCloseDelimited() throws {
        let pool = try PoolUnderTest(["--app", "stream"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("GET /?chunks=3&size=10 HTTP/1.0\r\n\r\n")
        let raw = try socket.readToEOF()
        let reply = try UWSGIClient.parse(raw)
        #expect(reply.header("Transfer-Encoding") == nil)
        #expect(reply.header("Connection") == "close")
        #expect(reply.body == Self.expected(chunks: 3, size: 10))
        try pool.stop()
    }

    @Test(arguments: [1, 3])
    func uwsgiIsCloseDelimited(threads: Int) throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "stream", "--threads", "\(threads)"])
        let raw = try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/?chunks=50&size=65536"))
        let reply = try UWSGIClient.parse(raw)
        #expect(reply.status == 200)
        #expect(reply.header("Content-Length") == nil)
        #expect(reply.header("Transfer-Encoding") == nil)
        #expect(reply.body == Self.expected(chunks: 50, size: 65536))
        try pool.stop()
    }

    /// A client that asks for 600 MiB and reads nothing must neither pin an app thread nor fill the
    /// worker's memory: the stream is aborted (8 MiB queued inline, or --socket-timeout with threads).
    @Test(arguments: [1, 2])
    func clientThatStopsReadingEndsTheStream(threads: Int) throws {
        let pool = try PoolUnderTest(["--app", "stream", "--threads", "\(threads)", "--socket-timeout", "1"])
        let silent = try TestSocket(tcpPort: pool.httpPort!)
        var size = Int32(4096)
        setsockopt(silent.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        try silent.write("GET /?chunks=600&size=1048576 HTTP/1.1\r\nHost: x\r\n\r\n")
        try Harness.waitUntil("the aborted stream in the log") { pool.log.contains("the client stopped reading") }
        let worker = try #require(pool.workers.first)
        let statm = try String(contentsOfFile: "/proc/\(worker)/statm", encoding: .utf8).split(separator: " ")
        let residentMiB = (Int(statm[1]) ?? 0) * 4096 / (1 << 20)
        #expect(residentMiB < 200, "worker RSS \(residentMiB) MiB")
        // The thread is free again.
        for _ in 0..<threads + 1 {
            #expect(try HTTPClient.get(port: pool.httpPort!, "/?chunks=2&size=10").body.count == 20)
        }
        try pool.stop()
    }

    @Test func headOfAStreamSendsNoBody() throws {
        let pool = try PoolUnderTest(["--app", "stream"])
        let socket = try TestSocket(tcpPort: pool.httpPort!)
        try socket.write("HEAD /?chunks=5 HTTP/1.1\r\nHost: x\r\n\r\nGET /?chunks=1&size=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let reader = HTTPResponseReader(socket)
        let head = try reader.next(headRequest: true)
        #expect(head.status == 200)
        let get = try reader.next()
        #expect(get.body == [0, 0, 0])
        try pool.stop()
    }
}
