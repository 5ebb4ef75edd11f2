import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Swift-made Python objects of each request (environ, keys, wsgi.input, start_response, write(), the head) must
/// all be released: a worker serving 100,000 requests keeps its RSS flat (issue 15; a 2 MiB bound, read from /proc
/// before and after, with a warm-up first so allocator and interpreter caches are already grown). The run blocks for
/// about a minute in the debug build, so it runs on a thread of its own, not on one of swift-testing's.
@Suite("WSGI reference leaks", .timeLimit(.minutes(10)))
struct WSGIReferenceLeakTests {
    static func rssKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw HarnessError("no VmRSS in /proc/\(pid)/status") }
        return kib
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
        guard ok.count == count else { throw HarnessError("\(count - ok.count) of \(count) answers were not a 200") }
        guard echoes.count == (count + 3) / 4 else { throw HarnessError("only \(echoes.count) bodies came back") }
    }

    static let measured = 100_000

    /// On its own thread (the suite's longest blocking run); expectations are checked back on the test's task.
    @Test func manyRequestsKeepTheWorkersRSSFlat() async throws {
        let (before, after, sameWorker) = try await onItsOwnThread {
            let wsgi = try WSGIPool("leak_probe", ["--processes", "1", "--threads", "1"])
            defer { try? wsgi.pool.stop() }
            guard let worker = wsgi.pool.workers.first else { throw HarnessError("the pool has no worker") }
            let socket = try TestSocket(tcpPort: wsgi.port)
            try Self.serve(5_000, socket: socket)
            let before = try Self.rssKiB(worker)
            try Self.serve(Self.measured, socket: socket)
            return (before, try Self.rssKiB(worker), wsgi.pool.workers == [worker])
        }
        #expect(sameWorker, "the same worker served them all")
        #expect(after - before < 2048, "RSS grew from \(before) KiB to \(after) KiB over \(Self.measured) requests")
    }
}
