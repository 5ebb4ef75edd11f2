import CompressNIO
import NIOCore
import NIOHTTP1
import Testing

@testable import KeelFront

@Suite struct CompressionTests {
    @Test(arguments: [
        ([], false),
        (["gzip"], true),
        (["GZIP"], true),
        (["x-gzip"], true),
        (["deflate, gzip;q=0.8"], true),
        (["gzip;q=0"], false),
        (["gzip;q=0.0, identity"], false),
        (["*"], true),
        (["*;q=0"], false),
        (["*, gzip;q=0"], false),
        (["identity"], false),
        (["gzip;q=0.5, identity"], false),
        (["gzip;q=1, identity;q=0.5"], true),
        (["br", "gzip"], true),
        (["br;q=1, *;q=0.1"], true),
        (["gzip;q=bogus"], false),
        (["gzip ; q=0.3"], true),
    ])
    func acceptEncodingNegotiation(values: [String], accepts: Bool) {
        #expect(AcceptEncoding.acceptsGzip(values) == accepts, "\(values)")
    }

    static func head(_ headers: [(String, String)], status: HTTPResponseStatus = .ok) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers))
    }

    @Test func compressibleResponses() {
        let config = FrontConfiguration.Compression()
        for type in ["text/html; charset=utf-8", "application/json", "application/problem+json", "image/svg+xml",
                     "application/wasm", "TEXT/CSS", "application/javascript", "application/atom+xml"] {
            #expect(CompressionPolicy.isCompressible(Self.head([("Content-Type", type)]), config), "\(type)")
        }
    }

    @Test(arguments: [
        ("a type not listed", head([("Content-Type", "image/png")])),
        ("no type", head([])),
        ("already encoded", head([("Content-Type", "text/plain"), ("Content-Encoding", "br")])),
        ("204", head([("Content-Type", "text/plain")], status: .noContent)),
        ("304", head([("Content-Type", "text/plain")], status: .notModified)),
        ("206", head([("Content-Type", "text/plain")], status: .partialContent)),
        ("no-transform", head([("Content-Type", "text/plain"), ("Cache-Control", "public, no-transform")])),
        ("shorter than min_length", head([("Content-Type", "text/plain"), ("Content-Length", "100")])),
    ])
    func neverCompressed(reason: String, head: HTTPResponseHead) {
        #expect(!CompressionPolicy.isCompressible(head, FrontConfiguration.Compression()), "\(reason)")
    }

    @Test func disabledCompressesNothing() {
        var config = FrontConfiguration.Compression()
        config.enabled = false
        #expect(!CompressionPolicy.isCompressible(Self.head([("Content-Type", "text/plain")]), config))
    }

    @Test func markingDropsLengthAddsEncodingAndWeakensTheETag() {
        var headers: HTTPHeaders = ["Content-Length": "999", "ETag": "\"abc\"", "Vary": "Cookie"]
        CompressionPolicy.addVary(&headers)
        CompressionPolicy.markCompressed(&headers)
        #expect(!headers.contains(name: "content-length"))
        #expect(headers["Content-Encoding"] == ["gzip"])
        #expect(headers["ETag"] == ["W/\"abc\""])
        #expect(headers["Vary"] == ["Cookie", "Accept-Encoding"])
        var weak: HTTPHeaders = ["ETag": "W/\"x\"", "Vary": "accept-encoding"]
        CompressionPolicy.addVary(&weak)
        CompressionPolicy.markCompressed(&weak)
        #expect(weak["ETag"] == ["W/\"x\""])
        #expect(weak["Vary"] == ["accept-encoding"])
    }

    @Test(arguments: [0, 13, 100_000, 3_000_000])
    func gzipStreamRoundTrips(size: Int) throws {
        let allocator = ByteBufferAllocator()
        let stream = try GzipStream(level: 6, allocator: allocator, pool: DeflaterPool())
        var original = allocator.buffer(capacity: size)
        for index in 0..<size { original.writeInteger(UInt8(ascii: "a") + UInt8((index / 7) % 26)) }
        var compressed = allocator.buffer(capacity: 0)
        var rest = original
        // In uneven slices, with a sync flush in between, as a streamed response arrives.
        while rest.readableBytes > 0 {
            var slice = rest.readSlice(length: min(rest.readableBytes, 70_001))!
            var out = try stream.compress(slice)
            compressed.writeBuffer(&out)
            if rest.readableBytes % 3 == 0 {
                var flushed = try stream.flush()
                compressed.writeBuffer(&flushed)
            }
            slice.clear()
        }
        var tail = try stream.finish()
        compressed.writeBuffer(&tail)
        #expect(compressed.getBytes(at: compressed.readerIndex, length: 2) == [0x1F, 0x8B], "gzip magic")
        let decompressed = try compressed.decompress(with: .gzip)
        #expect(decompressed == original)
    }

    @Test func aDroppedStreamGivesItsResetStateBackToThePool() throws {
        let pool = DeflaterPool()
        let allocator = ByteBufferAllocator()
        var first: GzipStream? = try GzipStream(level: 1, allocator: allocator, pool: pool)
        var once = try first!.compress(ByteBuffer(string: String(repeating: "abandoned halfway ", count: 100)))
        once.clear()
        first = nil  // a client that went away mid-response
        #expect(pool.idleCount == 1)
        let second = try GzipStream(level: 1, allocator: allocator, pool: pool)
        #expect(pool.idleCount == 0, "the reset state was taken again")
        var output = try second.compress(ByteBuffer(string: "fresh"))
        var tail = try second.finish()
        output.writeBuffer(&tail)
        #expect(try output.decompress(with: .gzip) == ByteBuffer(string: "fresh"), "nothing of the abandoned stream leaks in")
    }

    @Test func aSyncFlushMakesEverythingSoFarDecodable() throws {
        let stream = try GzipStream(level: 1, allocator: ByteBufferAllocator(), pool: DeflaterPool())
        var head = try stream.compress(ByteBuffer(string: "hello, streamed world"))
        var flushed = try stream.flush()
        head.writeBuffer(&flushed)
        #expect(head.readableBytes > 10, "the flush pushed the data out")
        var again = try stream.flush()
        #expect(again.readableBytes < 8, "a second flush with nothing new gives next to nothing")
        again.clear()
    }
}
