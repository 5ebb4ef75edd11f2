import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel → keel-pool on the keel wire (persistent uwsgi connections), with real processes on both sides.
@Suite("keel wire: keel → keel-pool", .serialized, .timeLimit(.minutes(4)))
struct KeelWireTests {
    /// Routes for every response shape the wire must frame; /count appends to calls.log so a test can count app calls.
    static let app = #"""
import os, time

def application(environ, start_response):
    path = environ['PATH_INFO']
    method = environ['REQUEST_METHOD']
    if path == '/count':
        with open('calls.log', 'a') as log:
            log.write(method + ' ' + environ['QUERY_STRING'] + '\n')
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [method.encode()]
    if path.startswith('/status/'):
        code = int(path[8:])
        start_response('%d X' % code, [('ETag', '"v1"'), ('Vary', 'Accept-Encoding')])
        return []
    if path == '/stream':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return (bytes([i % 256]) * 1000 for i in range(int(environ['QUERY_STRING'] or '50')))
    if path == '/echo':
        body = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(len(body)))])
        return [body]
    if path == '/text':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'keel wire text line\n' * 400]
    if path == '/sleep':
        time.sleep(float(environ['QUERY_STRING'] or '1'))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('%d\n' % os.getpid()).encode()]
    if path == '/die':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        def cut():
            yield b'first part\n'
            os.kill(os.getpid(), 9)
        return cut()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello\n']
"""#

    /// A keel-pool running `app` on a unix socket, with stats on another.
    static func pool(_ flags: [String]) throws -> (PoolUnderTest, stats: String) {
        let directory = try Harness.makeTempDirectory()
        try app.write(toFile: directory + "/wire_app.py", atomically: true, encoding: .utf8)
        let stats = directory + "/stats.sock"
        let pool = try PoolUnderTest(
            http: false, uwsgi: true, ["--chdir", directory, "--wsgi-file", directory + "/wire_app.py", "--stats", stats] + flags)
        return (pool, stats)
    }

    static func workers(_ stats: String) throws -> [[String: Any]] {
        let document = try JSONSerialization.jsonObject(with: Data(try UWSGIStatsReader.read(unixPath: stats).utf8))
        return (document as? [String: Any])?["workers"] as? [[String: Any]] ?? []
    }

    static func sum(_ key: String, _ stats: String) throws -> Int {
        try workers(stats).reduce(0) { $0 + ($1[key] as? Int ?? 0) }
    }

    static func keel(_ pool: PoolUnderTest, _ extra: String = "", eventLoops: Int = 2) throws -> FrontUnderTest {
        try FrontUnderTest(
            ["--event-loops", String(eventLoops)],
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [upstream.app]
                servers = ["unix:\(pool.socketPath!)"]
                \(extra)
                [[route]]
                path = "/"
                uwsgi = "app"
                [log]
                access = "off"
                """)
    }

    @Test func tenThousandSequentialRequestsUseAtMostKeepaliveConnectionsPerLoop() throws {
        let (pool, stats) = try Self.pool(["--processes", "2", "--threads", "1"])
        let keel = try Self.keel(pool, "keepalive = 4")
        // 20 client connections of 500 requests each (keel closes a client connection after keepalive_requests).
        for connection in 0..<20 {
            let socket = try TestSocket(tcpPort: keel.port)
            let reader = HTTPResponseReader(socket)
            for index in 0..<500 {
                try socket.write("GET /n\(connection)-\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                let reply = try reader.next()
                guard reply.status == 200, reply.text == "hello\n" else {
                    Issue.record("request \(connection)-\(index): \(reply.status) \(reply.text)")
                    return
                }
            }
        }
        // A second client connection lands on the other event loop (or the same): still within 4 per loop.
        for _ in 0..<50 { #expect(try keel.get("/").status == 200) }
        #expect(try Self.sum("requests", stats) == 10_050)
        let accepted = try Self.sum("connections", stats)
        #expect(accepted >= 1 && accepted <= 4 * 2, "keel-pool accepted \(accepted) connections for 10,050 requests")
        #expect(try Self.sum("persistent_connections", stats) >= 1)
        #expect(keel.log.contains("speaks the keel wire: connections are kept (keepalive 4 per event loop)"))
        let table = try CLITests.run(["stats", stats])
        #expect(table.output.contains("CONNS") && table.output.contains("KEPT"))
    }

    @Test func connectionsPersistOverTCPToo() throws {
        let directory = try Harness.makeTempDirectory()
        try Self.app.write(toFile: directory + "/wire_app.py", atomically: true, encoding: .utf8)
        let port = try Harness.freePort()
        let stats = directory + "/stats.sock"
        let pool = try PoolUnderTest(
            http: false, uwsgi: false,
            ["--chdir", directory, "--wsgi-file", directory + "/wire_app.py", "--socket", "127.0.0.1:\(port)", "--stats", stats])
        let keel = try FrontUnderTest(
            ["--event-loops", "1"],
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [upstream.app]
                servers = ["127.0.0.1:\(port)"]
                [[route]]
                path = "/"
                uwsgi = "app"
                """)
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        for index in 0..<100 {
            // Streamed (chunked) responses too, several writes each on the kept TCP connection.
            try socket.write("GET \(index % 2 == 0 ? "/" : "/stream?5") HTTP/1.1\r\nHost: x\r\n\r\n")
            let reply = try reader.next()
            #expect(reply.status == 200)
            #expect(reply.body.count == (index % 2 == 0 ? 6 : 5000))
        }
        #expect(try Self.sum("connections", stats) == 1, "one kept TCP connection for 100 requests")
        #expect(keel.log.contains("(127.0.0.1:\(port)) speaks the keel wire"))
        withExtendedLifetime(pool) {}
    }

    @Test func everyResponseShapeCrossesOneKeptConnectionByteExact() throws {
        let (pool, stats) = try Self.pool(["--processes", "1", "--threads", "1"])
        let keel = try Self.keel(pool)
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        func send(_ method: String, _ target: String, body: [UInt8] = [], headers: String = "") throws -> HTTPReply {
            let length = body.isEmpty ? "" : "Content-Length: \(body.count)\r\n"
            try socket.write(Array("\(method) \(target) HTTP/1.1\r\nHost: x\r\n\(headers)\(length)\r\n".utf8) + body)
            return try reader.next(headRequest: method == "HEAD")
        }
        let get = try send("GET", "/")
        #expect(get.status == 200 && get.text == "hello\n")
        let head = try send("HEAD", "/text")
        #expect(head.status == 200 && head.body.isEmpty)
        let noContent = try send("GET", "/status/204")
        #expect(noContent.status == 204 && noContent.body.isEmpty)
        let notModified = try send("GET", "/status/304")
        #expect(notModified.status == 304 && notModified.header("ETag") == "\"v1\"")
        let streamed = try send("GET", "/stream?300")
        #expect(streamed.status == 200)
        #expect(streamed.header("Transfer-Encoding")?.lowercased() == "chunked")
        #expect(streamed.body == (0..<300).flatMap { [UInt8](repeating: UInt8($0 % 256), count: 1000) })
        let upload = testBytes(count: 1 << 20)
        let echo = try send("POST", "/echo", body: upload)
        #expect(echo.status == 200 && echo.header("Content-Length") == String(1 << 20))
        #expect(echo.body == upload)
        let zipped = try send("GET", "/text", headers: "Accept-Encoding: gzip\r\n")
        #expect(zipped.header("Content-Encoding") == "gzip")
        #expect(try PythonGzip.decompress(zipped.body, in: keel.directory) == Array(String(repeating: "keel wire text line\n", count: 400).utf8))
        let after = try send("GET", "/")
        #expect(after.status == 200 && after.text == "hello\n")
        #expect(try Self.sum("connections", stats) == 1, "every response above crossed one kept connection")
    }

    @Test func aWorkerRecycledEvery50RequestsUnderLoadFailsNothing() throws {
        let (pool, stats) = try Self.pool(["--processes", "2", "--threads", "1", "--max-requests", "50"])
        let keel = try Self.keel(pool)
        let port = keel.port
        let load = LoadClient(threads: 4, total: 1200, seconds: 90) {
            let index = Int.random(in: 0..<1000)
            if index % 2 == 0 { return try HTTPClient.request(port: port, "/n\(index)").status }
            let body = testBytes(count: 3000, seed: UInt64(index))
            let reply = try HTTPClient.request(port: port, method: "POST", "/echo", body: body)
            return reply.body == body ? reply.status : -1
        }
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        #expect(load.succeeded == 1200)
        #expect(pool.log.contains("recycling"))
        _ = stats
    }

    @Test func aPOSTRacingALeavingWorkerIsSentOnceAndAnswered() throws {
        let (pool, _) = try Self.pool(["--processes", "2", "--threads", "1"])
        let keel = try Self.keel(pool)
        var answered = 0
        for round in 0..<6 {
            // Kept connections exist; HUP makes every worker leave (goodbye on each) while requests keep coming.
            for _ in 0..<4 { _ = try keel.get("/") }
            kill(pool.process.pid, SIGHUP)
            for index in 0..<10 {
                let reply = try HTTPClient.request(port: keel.port, method: "POST", "/count?\(round)-\(index)", body: [1, 2, 3])
                #expect(reply.status == 200, "round \(round) request \(index): \(reply.status)")
                if reply.status == 200 { answered += 1 }
                let get = try keel.get("/count?get")
                #expect(get.status == 200)
            }
        }
        let calls = try String(contentsOfFile: pool.directoryOfApp + "/calls.log", encoding: .utf8)
        let posts = calls.split(separator: "\n").filter { $0.hasPrefix("POST ") }
        #expect(posts.count == answered, "every POST reached the app exactly once")
        #expect(Set(posts).count == posts.count)
    }

    @Test func aWorkerKilledMidResponseCutsOnlyThatResponse() throws {
        let (pool, _) = try Self.pool(["--processes", "2", "--threads", "1"])
        let keel = try Self.keel(pool)
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write("GET /die HTTP/1.1\r\nHost: x\r\n\r\n")
        let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 502") || (raw.hasPrefix("HTTP/1.1 200") && !raw.hasSuffix("0\r\n\r\n")), "\(raw)")
        #expect(keel.log.contains("before the end of the response body"))
        for _ in 0..<20 { #expect(try keel.get("/").status == 200) }
    }

    @Test(arguments: [(1, 1.6, "serialised"), (2, 0.0, "overlapped")])
    func theThreadsContractHoldsBehindKeptConnections(threads: Int, atLeast: Double, shape: String) throws {
        let (pool, _) = try Self.pool(["--processes", "1", "--threads", String(threads)])
        let keel = try Self.keel(pool)
        // 64 idle client keep-alive connections first, each after one request: none may hold an app thread.
        var idle: [TestSocket] = []
        for _ in 0..<64 {
            let socket = try TestSocket(tcpPort: keel.port)
            try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try HTTPResponseReader(socket).next().status == 200)
            idle.append(socket)
        }
        let start = Date()
        let results = try Self.concurrently(2) { _ in try HTTPClient.request(port: keel.port, "/sleep?1").status }
        let elapsed = Date().timeIntervalSince(start)
        #expect(results == [200, 200])
        if threads == 1 {
            #expect(elapsed >= atLeast, "two 1 s requests on a 1 × 1 pool took \(elapsed) s: not \(shape)")
        } else {
            #expect(elapsed < 1.8, "two 1 s requests on a 1 × 2 pool took \(elapsed) s: not \(shape)")
        }
        withExtendedLifetime(idle) {}
    }

    @Test func aBusyWorkersKeptConnectionIsPassedOverForAFreeWorker() throws {
        let (pool, _) = try Self.pool(["--processes", "2", "--threads", "1"])
        // One loop: with two, the second request may start on the other loop and connect before the first has
        // reached worker A, and A's idle thread may accept it (a race no front can see; see the issue 13 note).
        let keel = try Self.keel(pool, eventLoops: 1)
        // Sequential requests: keel keeps one connection, to one worker.
        for _ in 0..<10 { #expect(try keel.get("/").status == 200) }
        let start = Date()
        let pids = try Self.concurrently(2) { _ in try HTTPClient.request(port: keel.port, "/sleep?1").text }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 1.8, "the second request waited for the first worker (\(elapsed) s)")
        #expect(Set(pids).count == 2, "both workers answered: \(pids)")
    }

    /// Runs `count` calls of `body` at once on threads of their own and returns their results in order.
    static func concurrently<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = LockedBox<[Int: Result<T, any Error>]>([:])
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                let result = Result { try body(index) }
                results.withLock { $0[index] = result }
                group.leave()
            }.start()
        }
        guard group.wait(timeout: .now() + 30) == .success else { throw HarnessError("concurrent requests did not finish") }
        return try (0..<count).map { index in try results.withLock { $0[index]! }.get() }
    }
}

extension PoolUnderTest {
    /// The --chdir directory the keel-wire app writes calls.log into.
    var directoryOfApp: String {
        let arguments = process.process.arguments
        return arguments.firstIndex(of: "--chdir").map { arguments[$0 + 1] } ?? directory
    }
}

/// A value shared by test threads.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try lock.withLock { try body(&value) }
    }
}
