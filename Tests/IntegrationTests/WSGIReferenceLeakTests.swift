import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Swift-made Python objects of each request (environ, keys, inputs, start_response, write(), the head) must
/// all be released: a worker serving 100,000 requests keeps its RSS flat (issue 15; a generous 2 MiB bound, read
/// from /proc before and after, with a warm-up first so allocator and interpreter caches are already grown).
@Suite("WSGI reference leaks", .timeLimit(.minutes(10)))
struct WSGIReferenceLeakTests {
    static func rssKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    /// Counts a needle in a stream read piece by piece (its first byte occurs nowhere else in it, so a mismatch
    /// restarts at most at the current byte).
    struct Counter {
        let needle: [UInt8]
        var matched = 0
        var count = 0

        mutating func feed(_ bytes: [UInt8]) {
            for byte in bytes {
                if byte == needle[matched] {
                    matched += 1
                    if matched == needle.count {
                        count += 1
                        matched = 0
                    }
                } else {
                    matched = byte == needle[0] ? 1 : 0
                }
            }
        }
    }

    /// `count` requests in pipelined batches on one connection, every 4th with a body the app echoes; the answers
    /// are counted in the raw stream (each ends with write()'s chunked body's last chunk), since parsing every
    /// reply would make the client the bottleneck.
    static func serve(_ count: Int, socket: TestSocket) throws {
        let batch = 200
        var ok = Counter(needle: Array("HTTP/1.1 200 OK\r\n".utf8))
        var ends = Counter(needle: Array("0\r\n\r\n".utf8))
        var echoes = Counter(needle: Array("hello".utf8))
        for start in stride(from: 0, to: count, by: batch) {
            let end = min(start + batch, count)
            var requests = ""
            for index in start..<end {
                requests += index % 4 == 0
                    ? "POST /p HTTP/1.1\r\nHost: x\r\nUser-Agent: probe\r\nContent-Length: 5\r\n\r\nhello"
                    : "GET /g HTTP/1.1\r\nHost: x\r\nUser-Agent: probe\r\n\r\n"
            }
            try socket.write(requests)
            while ends.count < end {
                let more = try socket.readSome()
                guard !more.isEmpty else { throw HarnessError("the connection closed after request \(ends.count)") }
                ok.feed(more)
                ends.feed(more)
                echoes.feed(more)
            }
        }
        #expect(ok.count == count, "every answer is a 200")
        #expect(echoes.count == (count + 3) / 4, "every body came back")
    }

    @Test func aHundredThousandRequestsKeepTheWorkersRSSFlat() throws {
        let wsgi = try WSGIPool("leak_probe", ["--processes", "1", "--threads", "1"])
        let worker = try #require(wsgi.pool.workers.first)
        let socket = try TestSocket(tcpPort: wsgi.port)
        try Self.serve(10_000, socket: socket)
        let before = try Self.rssKiB(worker)
        try Self.serve(100_000, socket: socket)
        let after = try Self.rssKiB(worker)
        #expect(wsgi.pool.workers == [worker], "the same worker served them all")
        #expect(after - before < 2048, "RSS grew from \(before) KiB to \(after) KiB over 100,000 requests")
        try wsgi.pool.stop()
    }
}
