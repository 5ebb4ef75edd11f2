import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Static files as nginx serves them: validators and 304, ranges, precompressed siblings, index, fallback, and a
/// path that never leaves the root.
@Suite("keel: static files", .serialized, .timeLimit(.minutes(3)))
struct FrontStaticTests {
    /// A site: /site (served) with files, a hidden file, a symlink out, and /outside (never served).
    final class Site: @unchecked Sendable {
        let directory: String
        let keel: FrontUnderTest
        let big: [UInt8]

        init(extraRoute: String = "", bigSize: Int = 0) throws {
            directory = try Harness.makeTempDirectory()
            let site = directory + "/site"
            let fm = FileManager.default
            try fm.createDirectory(atPath: site + "/docs", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: site + "/empty", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: directory + "/outside", withIntermediateDirectories: true)
            try "<h1>home</h1>\n".write(toFile: site + "/index.html", atomically: true, encoding: .utf8)
            try "readme text\n".write(toFile: site + "/docs/readme.txt", atomically: true, encoding: .utf8)
            try String(repeating: "0123456789", count: 100).write(toFile: site + "/digits.txt", atomically: true, encoding: .utf8)
            try "SECRET=1\n".write(toFile: site + "/.env", atomically: true, encoding: .utf8)
            try "top secret\n".write(toFile: directory + "/outside/secret.txt", atomically: true, encoding: .utf8)
            try fm.createSymbolicLink(atPath: site + "/escape.txt", withDestinationPath: directory + "/outside/secret.txt")
            try fm.createSymbolicLink(atPath: site + "/inside.txt", withDestinationPath: site + "/docs/readme.txt")
            let app = Array(String(repeating: "var x = 1;\n", count: 500).utf8)
            try Data(app).write(to: URL(fileURLWithPath: site + "/app.js"))
            try Data(PythonGzip.compress(app, in: directory)).write(to: URL(fileURLWithPath: site + "/app.js.gz"))
            var big = [UInt8](repeating: 0, count: bigSize)
            for index in stride(from: 0, to: bigSize, by: 4096) { big[index] = UInt8(truncatingIfNeeded: index / 4096) }
            self.big = big
            if bigSize > 0 { try Data(big).write(to: URL(fileURLWithPath: site + "/big.bin")) }
            keel = try FrontUnderTest(config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [log]
                access = "off"
                [mime_types]
                js = "text/javascript"
                [[route]]
                path = "/"
                static = "\(site)"
                gzip_static = true
                expires = "1h"
                \(extraRoute)
                """, directory: directory + "/keel")
        }

        func get(_ target: String, _ headers: [(String, String)] = [], method: String = "GET") throws -> HTTPReply {
            try HTTPClient.request(port: keel.port, method: method, target, headers: headers)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test func statusesValidatorsAndHead() throws {
        let site = try Site()
        let home = try site.get("/")
        #expect(home.status == 200 && home.text == "<h1>home</h1>\n")
        let etag = try #require(home.header("ETag"))
        let modified = try #require(home.header("Last-Modified"))
        #expect(home.header("Cache-Control") == "max-age=3600")
        #expect(home.header("Expires") != nil)
        #expect(try site.get("/", [("If-None-Match", etag)]).status == 304)
        #expect(try site.get("/", [("If-Modified-Since", modified)]).status == 304)
        #expect(try site.get("/", [("If-None-Match", "\"stale\"")]).status == 200)
        let head = try site.get("/docs/readme.txt", method: "HEAD")
        #expect(head.status == 200 && head.header("Content-Length") == "12" && head.body.isEmpty)
        #expect(try site.get("/docs/readme.txt").header("Content-Type") == "text/plain; charset=utf-8")
        #expect(try site.get("/nope.txt").status == 404)
        #expect(try site.get("/empty/").status == 403, "a directory without index is not listed")
        #expect(try site.get("/docs").status == 301)
        #expect(try site.get("/docs/readme.txt", method: "POST").status == 405)
    }

    @Test func rangesGive206And416() throws {
        let site = try Site()
        let part = try site.get("/digits.txt", [("Range", "bytes=10-19")])
        #expect(part.status == 206)
        #expect(part.text == "0123456789")
        #expect(part.header("Content-Range") == "bytes 10-19/1000")
        let tail = try site.get("/digits.txt", [("Range", "bytes=-3")])
        #expect(tail.status == 206 && tail.text == "789")
        let beyond = try site.get("/digits.txt", [("Range", "bytes=5000-")])
        #expect(beyond.status == 416)
        #expect(beyond.header("Content-Range") == "bytes */1000")
        let stale = try site.get("/digits.txt", [("Range", "bytes=0-1"), ("If-Range", "\"stale\"")])
        #expect(stale.status == 200 && stale.body.count == 1000, "If-Range with another version: the whole file")
    }

    @Test func precompressedSiblingAndMimeOverride() throws {
        let site = try Site()
        let zipped = try site.get("/app.js", [("Accept-Encoding", "gzip")])
        #expect(zipped.header("Content-Encoding") == "gzip")
        #expect(zipped.header("Content-Type") == "text/javascript")
        #expect(zipped.header("Vary") == "Accept-Encoding")
        let decoded = try PythonGzip.decompress(zipped.body, in: site.directory)
        let plain = try site.get("/app.js")
        #expect(plain.header("Content-Encoding") == nil)
        #expect(decoded == plain.body)
    }

    @Test func aFiftyMebibyteFileIsByteExact() throws {
        let site = try Site(bigSize: 50 << 20)
        let reply = try site.get("/big.bin")
        #expect(reply.status == 200)
        #expect(reply.body.count == site.big.count)
        #expect(reply.body == site.big)
    }

    @Test func fallbackSendsMissingFilesToTheApp() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env"])
        let site = try Site(extraRoute: "fallback = \"unix:\(pool.socketPath!)\"")
        #expect(try site.get("/docs/readme.txt").text == "readme text\n")
        let app = try site.get("/api/users?id=3")
        let vars = try #require(try JSONSerialization.jsonObject(with: Data(app.body)) as? [String: String])
        #expect(vars["PATH_INFO"] == "/api/users")
        #expect(vars["QUERY_STRING"] == "id=3")
    }

    /// At least 40 ways of asking for something outside the root or hidden; none may return file contents.
    static let traversals: [String] = [
        "/../outside/secret.txt", "/..%2foutside/secret.txt", "/%2e%2e/outside/secret.txt", "/%2E%2E/outside/secret.txt",
        "/.%2e/outside/secret.txt", "/%2e./outside/secret.txt", "/docs/../../outside/secret.txt",
        "/docs/..%2f..%2foutside/secret.txt", "/docs/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
        "/..\\outside\\secret.txt", "/%5c..%5coutside%5csecret.txt", "/..%5coutside/secret.txt",
        "/docs/..%5c..%5coutside/secret.txt", "/%c0%ae%c0%ae/outside/secret.txt", "/%c0%ae%c0%ae%c0%afoutside/secret.txt",
        "/%e0%80%ae%e0%80%ae/outside/secret.txt", "/%25%32%65%25%32%65/outside/secret.txt", "/..%00/outside/secret.txt",
        "/index.html%00.txt", "/docs/readme.txt%00", "/%00", "/.env", "/%2eenv", "/%2Eenv", "/docs/../.env",
        "/./.env", "/.env%00", "/escape.txt", "/docs/../escape.txt", "/%65scape.txt", "/....//outside/secret.txt",
        "/..;/outside/secret.txt", "/docs/..;/..;/outside/secret.txt", "/%252e%252e/outside/secret.txt",
        "/docs/./../../outside/secret.txt", "//../outside/secret.txt", "/docs//..//..//outside/secret.txt",
        "/.%00./outside/secret.txt", "/%2e%2e%5c%2e%2e%5coutside%5csecret.txt", "/.git/config", "/..", "/%2e%2e",
        "/docs/%2e%2e/%2e%2e/outside/secret.txt", "/%ff%fe/secret.txt",
    ]

    @Test func traversalCorpusNeverReachesOutside() throws {
        #expect(Self.traversals.count >= 40)
        let site = try Site()
        for target in Self.traversals {
            // Sent raw: the client must not normalise the path first.
            let socket = try TestSocket(tcpPort: site.keel.port)
            try socket.write("GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
            let status = Int(raw.split(separator: " ").dropFirst().first ?? "") ?? 0
            #expect([400, 403, 404].contains(status), "\(target) → \(status)")
            #expect(!raw.contains("top secret") && !raw.contains("SECRET=1"), "\(target) leaked")
        }
        #expect(try site.get("/inside.txt").text == "readme text\n", "a symlink that stays inside is followed")
    }
}
