import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// gzip on the system zlib, checked by the other side of the wire: Python's own gzip module decompresses.
@Suite("keel: gzip", .serialized, .timeLimit(.minutes(2)))
struct FrontCompressionTests {
    static let gzip = [("Accept-Encoding", "gzip, deflate")]

    @Test func proxiedJSONIsGzippedAndDecodesToTheSameDocument() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let plain = try keel.get("/doc?x=1")
        #expect(plain.header("Content-Encoding") == nil)
        #expect(plain.header("Vary") == "Accept-Encoding")
        let zipped = try keel.get("/doc?x=1", headers: Self.gzip)
        #expect(zipped.header("Content-Encoding") == "gzip")
        #expect(zipped.header("Content-Length") == nil)
        #expect(zipped.header("Vary") == "Accept-Encoding")
        #expect(zipped.body.count < plain.body.count)
        let decoded = try PythonGzip.decompress(zipped.body, in: keel.directory)
        let vars = try #require(try JSONSerialization.jsonObject(with: Data(decoded)) as? [String: String])
        #expect(vars["QUERY_STRING"] == "x=1")
        #expect(vars["HTTP_ACCEPT_ENCODING"] == "gzip, deflate")
    }

    @Test func aStreamedResponseIsCompressedAsItFlows() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "stream"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let reply = try keel.get("/s?text=1&chunks=300&size=10000", headers: Self.gzip)
        #expect(reply.header("Content-Encoding") == "gzip")
        #expect(reply.header("Transfer-Encoding") == "chunked")
        let decoded = try PythonGzip.decompress(reply.body, in: keel.directory)
        let expected = (0..<300).flatMap { [UInt8](repeating: UInt8(ascii: "a") + UInt8($0 % 26), count: 10000) }
        #expect(decoded == expected)
        #expect(reply.body.count < expected.count / 20)
    }

    @Test func aLargeStaticFileIsCompressedByteExact() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var text = [UInt8]()
        for line in 0..<40_000 { text += Array("line \(line): the quick brown fox jumps over the lazy dog\n".utf8) }
        try Data(text).write(to: URL(fileURLWithPath: directory + "/big.txt"))
        let keel = try FrontUnderTest(["--static", "/=\(directory)", "--access-log", "off"])
        let zipped = try keel.get("/big.txt", headers: Self.gzip)
        #expect(zipped.header("Content-Encoding") == "gzip")
        #expect(try PythonGzip.decompress(zipped.body, in: directory) == text)
        let plain = try keel.get("/big.txt")
        #expect(plain.body == text)
        #expect(plain.header("Content-Length") == String(text.count))
    }

    /// Deflate states are reused per event loop (reset between responses): every response, first or reused, on one
    /// connection or another, is byte for byte what a fresh zlib makes at the same level and window.
    @Test func reusedDeflateStatesGiveTheSameBytesAsAFreshZlib() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var text = [UInt8]()
        for line in 0..<2_000 { text += Array("\(line) GET /items/\(line * 7919 % 1000) HTTP/1.1 200 \(line * 31 % 977)\n".utf8) }
        var other = [UInt8]()
        for line in 0..<500 { other += Array("another file, line \(line)\n".utf8) }
        try Data(text).write(to: URL(fileURLWithPath: directory + "/a.txt"))
        try Data(other).write(to: URL(fileURLWithPath: directory + "/b.txt"))
        // a.txt (over 32 KiB) goes out with sendfile, flushed per slice; b.txt is read into the response at once.
        #expect(text.count > 32 * 1024 && other.count < 32 * 1024)
        let expectedA = try PythonGzip.zlibReference(text, level: 1, syncFlush: true, in: directory)
        let expectedB = try PythonGzip.zlibReference(other, level: 1, syncFlush: false, in: directory)
        let keel = try FrontUnderTest(["--static", "/=\(directory)", "--access-log", "off"])
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        for path in ["/a.txt", "/b.txt", "/a.txt", "/a.txt", "/b.txt"] {
            try socket.write(Array("GET \(path) HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n".utf8))
            let reply = try reader.next()
            #expect(reply.header("Content-Encoding") == "gzip")
            #expect(reply.body == (path == "/a.txt" ? expectedA : expectedB), "\(path) on a kept connection")
        }
        #expect(try keel.get("/a.txt", headers: Self.gzip).body == expectedA, "on a new connection")
    }

    @Test func headAndRefusedGzipAreNotCompressed() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let head = try HTTPClient.request(port: keel.port, method: "HEAD", "/", headers: Self.gzip)
        #expect(head.header("Content-Encoding") == nil)
        let refused = try keel.get("/", headers: [("Accept-Encoding", "gzip;q=0")])
        #expect(refused.header("Content-Encoding") == nil)
        #expect(try JSONSerialization.jsonObject(with: Data(refused.body)) is [String: String])
    }
}
