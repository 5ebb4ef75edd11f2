import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel-pool's async workers: ASGI apps (raw, FastAPI, Starlette) on a loop per worker, WSGI apps under gevent,
/// and --worker-connections, with the venv Tests/run.sh makes from PyPI.
@Suite("Async workers: ASGI and gevent", .timeLimit(.minutes(3)))
struct AsyncWorkerTests {
    /// keel-pool over the async test apps, with a state directory the apps write marks into.
    final class AsyncPool: @unchecked Sendable {
        let directory: String
        let pool: PoolUnderTest

        init(_ arguments: [String], http: Bool = true, uwsgi: Bool = false) throws {
            let venv = try AsyncTestApps.requireVenv()
            directory = try AsyncTestApps.makeDirectory()
            pool = try PoolUnderTest(
                http: http, uwsgi: uwsgi,
                ["--chdir", directory, "--virtualenv", venv, "--env", "KEEL_TEST_STATE=\(directory)"] + arguments)
        }

        var port: Int { pool.httpPort! }

        func marks(_ name: String) -> [String] {
            ((try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? "")
                .split(separator: "\n").map(String.init)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Sends `count` GETs of `target` on as many connections at once, then reads every reply.
    static func concurrentGets(port: Int, _ target: String, count: Int) throws -> (replies: [HTTPReply], seconds: Double) {
        let start = Date()
        var sockets: [TestSocket] = []
        for _ in 0..<count {
            let socket = try TestSocket(tcpPort: port)
            try socket.write("GET \(target) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            sockets.append(socket)
        }
        var replies: [HTTPReply] = []
        for (index, socket) in sockets.enumerated() {
            do { replies.append(try HTTPResponseReader(socket).next()) } catch {
                throw HarnessError("reply \(index + 1) of \(count) to \(target): \(error)")
            }
        }
        return (replies, Date().timeIntervalSince(start))
    }

    /// `body`, with the pool's log attached to what it throws.
    func withLog<T>(_ served: AsyncPool, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw HarnessError("\(error)\n--- pool log:\n\(served.pool.log)") }
    }

    @Test func rawASGIScopeBodiesAndErrors() throws {
        let served = try AsyncPool(["--asgi", "\(AsyncTestApps.module):raw"])
        let port = served.port
        #expect(try HTTPClient.get(port: port, "/").text == "Hello, World!")

        let scopeReply = try HTTPClient.request(port: port, "/scope?a=1&b=%20", headers: [("X-Custom", "Value")])
        let scope = try #require(try JSONSerialization.jsonObject(with: Data(scopeReply.body)) as? [String: Any])
        #expect(scope["type"] as? String == "http")
        #expect((scope["asgi"] as? [String: String])?["version"] == "3.0")
        #expect(scope["http_version"] as? String == "1.1")
        #expect(scope["method"] as? String == "GET")
        #expect(scope["scheme"] as? String == "http")
        #expect(scope["path"] as? String == "/scope")
        #expect(scope["raw_path"] as? String == "/scope")
        #expect(scope["query_string"] as? String == "a=1&b=%20")
        #expect(scope["root_path"] as? String == "")
        let headers = scope["headers"] as? [[String]] ?? []
        #expect(headers.contains(["x-custom", "Value"]))
        #expect(headers.contains(["host", "127.0.0.1:\(port)"]))
        #expect((scope["client"] as? [Any])?.first as? String == "127.0.0.1")
        #expect((scope["server"] as? [Any])?.last as? Int == port)
        #expect((scope["state"] as? [String: String])?["started"] == "yes", "lifespan state reaches the request")

        // A 1 MiB body arrives as several http.request messages with more_body.
        let upload = testBytes(count: 1 << 20)
        let chunks = try HTTPClient.request(port: port, method: "POST", "/chunks", body: upload)
        let counted = try #require(try JSONSerialization.jsonObject(with: Data(chunks.body)) as? [String: Int])
        #expect(counted["total"] == 1 << 20)
        #expect((counted["messages"] ?? 0) > 1)

        // A streamed 4 MiB response to a reader: chunked, complete.
        let big = try HTTPClient.get(port: port, "/big?64")
        #expect(big.body.count == 64 * 65536)
        #expect(big.header("Transfer-Encoding") == "chunked")

        let raised = try HTTPClient.get(port: port, "/raise")
        #expect(raised.status == 500)
        let none = try HTTPClient.get(port: port, "/no-response")
        #expect(none.status == 500)
        try served.pool.stop()
        let log = served.pool.log
        #expect(log.contains("RuntimeError: raised on purpose"))
        #expect(log.contains("app returned without completing its response to GET /no-response"))
        #expect(served.marks("startup").count == 1)
        #expect(served.marks("shutdown").count == 1, "lifespan shutdown runs on TERM")
    }

    @Test func httpDisconnectReachesTheApp() throws {
        let served = try AsyncPool(["--asgi", "\(AsyncTestApps.module):raw"])
        let socket = try TestSocket(tcpPort: served.port)
        try socket.write("GET /until-disconnect?first HTTP/1.1\r\nHost: test\r\n\r\n")
        _ = try socket.readSome()  // the head and "waiting"
        shutdown(socket.fd, Int32(SHUT_RDWR))
        try Harness.waitUntil("the app to see http.disconnect", seconds: 10) { served.marks("disconnected") == ["first"] }
        try served.pool.stop()
    }

    @Test func fastAPIAndStarlette() throws {
        let served = try AsyncPool(["--asgi", "\(AsyncTestApps.module):fastapi_app"])
        let port = served.port
        let item = try HTTPClient.get(port: port, "/items/42?q=hello")
        #expect(item.status == 200)
        #expect(item.text == #"{"item_id":42,"q":"hello"}"#)
        #expect(try HTTPClient.get(port: port, "/items/notanumber").status == 422)
        #expect(try HTTPClient.get(port: port, "/state").text == #"{"greeting":"hello from lifespan"}"#)
        let stream = try HTTPClient.get(port: port, "/stream")
        #expect(stream.text == (0..<5).map { "part \($0)\n" }.joined())
        let upload = try HTTPClient.request(port: port, method: "POST", "/upload", body: testBytes(count: 1 << 20))
        let counted = try #require(try JSONSerialization.jsonObject(with: Data(upload.body)) as? [String: Int])
        #expect(counted["bytes"] == 1 << 20)
        #expect((counted["chunks"] ?? 0) > 1, "read in chunks, not whole")
        #expect(try HTTPClient.get(port: port, "/boom").status == 500)

        let socket = try TestSocket(tcpPort: port)
        try socket.write("GET /disconnect HTTP/1.1\r\nHost: test\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.2)
        shutdown(socket.fd, Int32(SHUT_RDWR))
        try Harness.waitUntil("FastAPI to see the client leave", seconds: 10) {
            served.marks("fastapi-disconnected").count == 1
        }
        try served.pool.stop()
        #expect(served.pool.log.contains("ValueError: boom on purpose"))

        let starlette = try AsyncPool(["--asgi", "\(AsyncTestApps.module):starlette_app", "--loop", "asyncio"])
        #expect(try HTTPClient.get(port: starlette.port, "/").text == "hello from starlette")
        #expect(try HTTPClient.get(port: starlette.port, "/users/ada?page=2").text == #"{"user":"ada","page":"2"}"#)
        try starlette.pool.stop()
        #expect(starlette.pool.log.contains("ASGI app serving on asyncio"))
    }

    @Test func workerConnectionsBoundTheAsyncSleepApp() throws {
        let wide = try AsyncPool(["--asgi", "\(AsyncTestApps.module):raw", "--worker-connections", "1000"])
        let (replies, seconds) = try withLog(wide) { try Self.concurrentGets(port: wide.port, "/sleep?1", count: 200) }
        #expect(replies.allSatisfy { $0.status == 200 && $0.text == "slept" })
        #expect(seconds < 3, "200 sleeping requests on one worker overlap (took \(seconds) s)")
        #expect(try HTTPClient.get(port: wide.port, "/most").text == "200")
        try wide.pool.stop()

        let narrow = try AsyncPool(["--asgi", "\(AsyncTestApps.module):raw", "--worker-connections", "10"])
        let (narrowReplies, _) = try Self.concurrentGets(port: narrow.port, "/sleep?0.3", count: 30)
        #expect(narrowReplies.allSatisfy { $0.status == 200 })
        #expect(try HTTPClient.get(port: narrow.port, "/most").text == "10", "at most 10 in flight")
        try narrow.pool.stop()
    }

    @Test func geventRunsTheSeedsSimpleAppInGreenlets() throws {
        let wide = try AsyncPool(["--wsgi", "\(AsyncTestApps.module):simple_app", "--gevent", "100"])
        let (replies, seconds) = try Self.concurrentGets(port: wide.port, "/?1", count: 50)
        #expect(replies.allSatisfy { $0.status == 200 && $0.text == "Hello World\n" })
        #expect(seconds < 3, "50 time.sleep(1) requests overlap under gevent (took \(seconds) s)")
        #expect(try HTTPClient.get(port: wide.port, "/most").text == "50")

        let body = testBytes(count: 300_000)
        #expect(try HTTPClient.request(port: wide.port, method: "POST", "/echo", body: body).text == "300000 1")
        #expect(
            try HTTPClient.request(port: wide.port, method: "POST", "/lines", body: Array("a\nb\nc\n".utf8)).text == "3")
        let stream = try HTTPClient.get(port: wide.port, "/stream")
        #expect(stream.text == "chunk 0\nchunk 1\nchunk 2\n")
        #expect(try HTTPClient.get(port: wide.port, "/write").text == "written and returned")
        let file = try HTTPClient.get(port: wide.port, "/file")
        #expect(file.text == AsyncTestApps.source)
        try Harness.waitUntil("close() of the streamed result", seconds: 5) { wide.marks("closed").count == 1 }
        try wide.pool.stop()

        let narrow = try AsyncPool(["--wsgi", "\(AsyncTestApps.module):simple_app", "--gevent", "5"])
        let (narrowReplies, narrowSeconds) = try Self.concurrentGets(port: narrow.port, "/?0.5", count: 20)
        #expect(narrowReplies.allSatisfy { $0.status == 200 })
        #expect(narrowSeconds >= 1.9, "20 requests 5 at a time take four rounds (took \(narrowSeconds) s)")
        #expect(try HTTPClient.get(port: narrow.port, "/most").text == "5")
        try narrow.pool.stop()
    }

    @Test func clientsThatLeaveBeforeTheLastSendGiveTheirSlotBack() throws {
        // --gevent 2: two leaked slots would stop the worker accepting, and the last request would hang.
        let served = try AsyncPool(["--wsgi", "\(AsyncTestApps.module):simple_app", "--gevent", "2"])
        for _ in 0..<4 {
            let socket = try TestSocket(tcpPort: served.port)
            try socket.write("GET /empty HTTP/1.1\r\nHost: test\r\n\r\n")
            shutdown(socket.fd, Int32(SHUT_RDWR))
        }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try HTTPClient.get(port: served.port, "/echo").status == 200)
        try served.pool.stop()
        #expect(!served.pool.log.contains("app failed on GET /empty"), "a client that left is not an app failure")
    }

    @Test func lifespanFailuresAndAppsWithoutLifespan() throws {
        let venv = try AsyncTestApps.requireVenv()
        let directory = try AsyncTestApps.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let failing = try ManagedProcess(
            Harness.keelPoolPath,
            ["--http-socket", "127.0.0.1:\(try Harness.freePort())", "--chdir", directory, "--virtualenv", venv,
             "--asgi", "\(AsyncTestApps.module):failing_startup"], logPath: directory + "/failing.log")
        #expect(try failing.waitForExit(seconds: 30) == 1)
        #expect(failing.log.contains("the app's lifespan startup failed: the database is unreachable"))
        #expect(failing.log.components(separatedBy: "spawned worker").count == 2, "no respawn loop")

        let plain = try AsyncPool(["--asgi", "\(AsyncTestApps.module):no_lifespan"])
        #expect(try HTTPClient.get(port: plain.port, "/").text == "fine without lifespan")
        try plain.pool.stop()
        #expect(plain.pool.log.contains("does not support the ASGI lifespan protocol"))

        let silent = try AsyncPool(["--asgi", "\(AsyncTestApps.module):silent_lifespan"])
        #expect(try HTTPClient.get(port: silent.port, "/").text == "fine after a silent lifespan")
        try silent.pool.stop()
    }

    @Test func refusedAppsAndFlagsSayWhatToFix() throws {
        let venv = try AsyncTestApps.requireVenv()
        let directory = try AsyncTestApps.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func run(_ arguments: [String]) throws -> (code: Int32, log: String) {
            let process = try ManagedProcess(
                Harness.keelPoolPath,
                ["--http-socket", "127.0.0.1:\(try Harness.freePort())", "--chdir", directory] + arguments,
                logPath: directory + "/run.log")
            let code = try process.waitForExit(seconds: 30)
            return (code, process.log)
        }
        let app = AsyncTestApps.module
        let cases: [([String], String)] = [
            (["--asgi", "\(app):raw", "--wsgi", "\(app):simple_app"], "--asgi and --wsgi/--wsgi-file both name an app"),
            (["--asgi", "\(app):raw", "--worker-connections", "0"], "--worker-connections 0: give the requests in flight"),
            (["--wsgi", "\(app):simple_app", "--gevent", "10", "--threads", "4"], "--threads with --gevent: a gevent worker runs every request as a greenlet on one thread"),
            (["--asgi", "\(app):raw", "--loop", "trio"], "--loop trio: choose auto, asyncio or uvloop"),
            (["--wsgi", "\(app):simple_app", "--gevent", "10"], "--gevent: gevent is not importable from the app's environment"),
            (["--asgi", "\(app):not_async", "--virtualenv", venv], "not an async function of (scope, receive, send)"),
            (["--asgi", "\(app):two_arguments", "--virtualenv", venv], "the app takes 2 arguments; an ASGI 3 app takes three"),
            (["--asgi", "\(app):missing", "--virtualenv", venv], "has no attribute 'missing'"),
        ]
        for (arguments, message) in cases {
            let result = try run(arguments)
            #expect(result.code != 0, "\(arguments) should be refused")
            #expect(result.log.contains(message), "\(arguments): \(result.log)")
        }
    }

    @Test func recyclingAndHUPUnderLoadDropNothingAndLifespanRunsEachTime() throws {
        let served = try AsyncPool([
            "--asgi", "\(AsyncTestApps.module):raw", "--processes", "2", "--max-requests", "40",
        ])
        let port = served.port
        let load = LoadClient(threads: 4, total: 600, seconds: 60) { try HTTPClient.get(port: port, "/").status }
        Thread.sleep(forTimeInterval: 0.5)
        kill(served.pool.process.pid, SIGHUP)
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        #expect(load.succeeded == 600)
        try served.pool.stop()
        let log = served.pool.log
        #expect(log.contains("recycling"))
        // Every worker that served ran its startup, and each that left (recycled, reloaded or stopped) its shutdown.
        let started = served.marks("startup").count
        #expect(started >= 4)
        #expect(served.marks("shutdown").count == started, "lifespan shutdown on recycling, HUP and TERM")
    }

    @Test func harakiriLogsTheStuckCoroutineAndStatsShowInFlight() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stats = directory + "/stats.sock"
        let served = try AsyncPool([
            "--asgi", "\(AsyncTestApps.module):raw", "--harakiri", "2", "--stats", stats,
        ])
        let sockets = try (0..<3).map { _ in try TestSocket(tcpPort: served.port) }
        for socket in sockets { try socket.write("GET /sleep?30 HTTP/1.1\r\nHost: test\r\n\r\n") }
        try Harness.waitUntil("three requests in flight in the stats", seconds: 5) {
            let document = try JSONSerialization.jsonObject(with: Data(try UWSGIStatsReader.read(unixPath: stats).utf8))
            let workers = (document as? [String: Any])?["workers"] as? [[String: Any]] ?? []
            return workers.first?["in_flight"] as? Int == 3
                && (workers.first?["threads"] as? [Any])?.count == 3  // only rows in use are listed
        }
        let table = try CLITests.run(["stats", stats])
        #expect(table.output.contains("IN FLIGHT"))
        try Harness.waitUntil("harakiri to replace the worker", seconds: 15) {
            served.pool.log.contains("harakiri") && served.pool.readyWorkers >= 2
        }
        let log = served.pool.log
        #expect(log.contains("coroutine stack of"), "the stuck coroutines are logged")
        #expect(log.contains("in raw"), "with the app's frame: \(log)")
        #expect(try HTTPClient.get(port: served.port, "/").text == "Hello, World!")
        try served.pool.stop()
    }
}
