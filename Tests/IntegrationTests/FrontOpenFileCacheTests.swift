import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// nginx's open_file_cache, and the cache-relevant headers a 304 and a 206 must carry like their 200.
@Suite("keel: open_file_cache, 304/206 headers", .serialized, .timeLimit(.minutes(2)))
struct FrontOpenFileCacheTests {
    static func config(site: String, cache: String) -> String {
        """
        event_loops = 1
        \(cache)
        [[listen]]
        address = "127.0.0.1:{PORT}"
        [log]
        access = "off"
        [[route]]
        path = "/"
        static = "\(site)"
        """
    }

    /// Replaced (a new file renamed over the old, as deploys do): the cached descriptor still reads the old file
    /// until `valid` has passed since it was opened, then the new one is served.
    @Test func aReplacedFileIsServedNewAfterTheValidityTime() throws {
        let site = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: site) }
        try "version one\n".write(toFile: site + "/page.txt", atomically: false, encoding: .utf8)
        let keel = try FrontUnderTest(
            config: Self.config(site: site, cache: "[open_file_cache]\nmax = 10\nvalid = \"2s\"\ninactive = \"20s\""))
        #expect(try keel.get("/page.txt").text == "version one\n")
        let replacedAt = Date()
        try "version two, longer\n".write(toFile: site + "/page.tmp", atomically: false, encoding: .utf8)
        #expect(rename(site + "/page.tmp", site + "/page.txt") == 0)
        let cached = try keel.get("/page.txt")
        #expect(cached.text == "version one\n", "within valid the cached descriptor (the old file) is served")
        #expect(cached.header("Content-Length") == "12")
        var fresh = ""
        try Harness.waitUntil("the new file after valid", seconds: 10) {
            fresh = try keel.get("/page.txt").text
            return fresh == "version two, longer\n"
        }
        #expect(Date().timeIntervalSince(replacedAt) > 1, "not before valid ran out")
        #expect(try keel.get("/page.txt").header("Content-Length") == "20")
    }

    /// Without the table nothing is cached: a replaced file is served new at once.
    @Test func offByDefault() throws {
        let site = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: site) }
        try "one\n".write(toFile: site + "/page.txt", atomically: false, encoding: .utf8)
        let keel = try FrontUnderTest(config: Self.config(site: site, cache: ""))
        #expect(try keel.get("/page.txt").text == "one\n")
        try "two\n".write(toFile: site + "/page.tmp", atomically: false, encoding: .utf8)
        #expect(rename(site + "/page.tmp", site + "/page.txt") == 0)
        #expect(try keel.get("/page.txt").text == "two\n")
    }

    /// More files than `max`: every one is still served right (the least recently used is closed), and keel's
    /// descriptors stay bounded.
    @Test func theCacheIsBounded() throws {
        let site = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: site) }
        for index in 0..<40 { try "file \(index)\n".write(toFile: site + "/f\(index).txt", atomically: false, encoding: .utf8) }
        let keel = try FrontUnderTest(config: Self.config(site: site, cache: "[open_file_cache]\nmax = 5"))
        let before = Harness.openFDCount(keel.process.pid)
        for round in 0..<2 {
            for index in 0..<40 { #expect(try keel.get("/f\(index).txt").text == "file \(index)\n", "round \(round)") }
        }
        #expect(Harness.openFDCount(keel.process.pid) <= before + 5 + 2)
    }

    /// A 304 and a 206 carry Vary, ETag, Last-Modified, Cache-Control and Expires as the 200 does.
    @Test func notModifiedAndPartialKeepTheCachingHeaders() throws {
        let site = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: site) }
        try String(repeating: "compressible text\n", count: 100).write(toFile: site + "/a.txt", atomically: false, encoding: .utf8)
        let keel = try FrontUnderTest(
            config: Self.config(site: site, cache: "").replacingOccurrences(of: "static = ", with: "expires = \"1h\"\nstatic = "))
        let full = try keel.get("/a.txt")
        #expect(full.header("Vary") == "Accept-Encoding")
        let etag = try #require(full.header("ETag"))
        let notModified = try keel.get("/a.txt", headers: [("If-None-Match", etag)])
        let partial = try keel.get("/a.txt", headers: [("Range", "bytes=0-9")])
        #expect(notModified.status == 304)
        #expect(partial.status == 206)
        for (what, reply) in [("304", notModified), ("206", partial)] {
            for name in ["Vary", "ETag", "Last-Modified", "Cache-Control", "Expires", "Date"] {
                #expect(reply.header(name) != nil, "\(what) lacks \(name)")
            }
            #expect(reply.header("Vary") == full.header("Vary"), "\(what)")
        }
    }

    /// An upstream's 304 (no Content-Type) gets the Vary the gzip filter puts on its 200s.
    @Test func aProxiedNotModifiedCarriesVary() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "status"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--access-log", "off"])
        let reply = try keel.get("/304")
        #expect(reply.status == 304)
        #expect(reply.header("Vary") == "Accept-Encoding")
    }
}
