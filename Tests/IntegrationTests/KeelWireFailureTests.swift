import Foundation
import NIOCore
import Testing
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// keel against a scripted keel-wire server: the races and bad answers a real keel-pool shows only by chance.
@Suite("keel wire: races and bad input", .serialized, .timeLimit(.minutes(3)))
struct KeelWireFailureTests {
    static let ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

    static func keel(_ fake: FakeKeelPool, readTimeout: String = "60s") throws -> FrontUnderTest {
        try FrontUnderTest(
            ["--event-loops", "1"],
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [upstream.app]
                servers = ["unix:\(fake.path)"]
                read_timeout = "\(readTimeout)"
                [[route]]
                path = "/"
                uwsgi = "app"
                """)
    }

    /// The first connection answers its first request, then says goodbye to the next without reading it (a worker
    /// leaving as keel sends): the request is provably unread, so keel sends it again, even a POST, and the app sees
    /// it once.
    @Test(arguments: ["GET", "POST"])
    func aGoodbyeRacingARequestGetsItResentOnce(method: String) throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fake = try FakeKeelPool(directory: directory) { connection, index, _ in
            connection == 0 && index >= 1 ? .goodbyeUnread : .respond(Self.ok)
        }
        let keel = try Self.keel(fake)
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reader.next().status == 200)
        try socket.write("\(method) / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        let reply = try reader.next()
        #expect(reply.status == 200)
        #expect(reply.text == "ok\n")
        #expect(fake.readCount == 2, "the app saw the first request and the resent one, nothing twice")
        #expect(fake.connections == 2)
    }

    /// A kept connection closed after the server read the request (a worker killed mid-request): nothing proves the
    /// request unread, so neither a GET nor a POST is sent again; the client gets a 502.
    @Test(arguments: ["GET", "POST"])
    func aCloseAfterReadingIsNeverResent(method: String) throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fake = try FakeKeelPool(directory: directory) { _, index, _ in index == 1 ? .closeAfterRead : .respond(Self.ok) }
        let keel = try Self.keel(fake)
        let socket = try TestSocket(tcpPort: keel.port)
        let reader = HTTPResponseReader(socket)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reader.next().status == 200)
        try socket.write("\(method) / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        #expect(try reader.next().status == 502)
        #expect(fake.readCount == 2, "not sent twice")
        #expect(try keel.get("/").status == 200, "keel goes on with a new connection")
    }

    /// The worker's only thread busy longer than read_timeout (its answer trickles, so its own read timer is fed):
    /// a request waiting in keel for a free thread gives up after read_timeout with a 504 and a log line — as a
    /// request in the pool's listen queue behind nginx would — instead of waiting as long as the busy one lasts.
    @Test func aRequestWaitingForAFreeThreadGivesUpAfterReadTimeout() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fake = try FakeKeelPool(directory: directory) { _, index, _ in index == 1 ? .trickle(seconds: 4) : .respond(Self.ok) }
        let keel = try Self.keel(fake, readTimeout: "1s")
        #expect(try keel.get("/").status == 200, "the worker is known now: one thread")
        let port = keel.port
        let slow = LockedBox<Int?>(nil)
        let busy = Thread { slow.withLock { $0 = try? HTTPClient.get(port: port, "/slow").status } }
        busy.start()
        try Harness.waitUntil("the slow request to take the thread") { fake.readCount == 2 }
        let started = Date()
        #expect(try keel.get("/waits").status == 504)
        let waited = Date().timeIntervalSince(started)
        #expect(waited > 0.8 && waited < 2.5, "gave up after read_timeout (1 s), not when the thread came free: \(waited) s")
        #expect(keel.log.contains("had no free worker thread for 1s (read_timeout)"), "\(keel.log)")
        try Harness.waitUntil("the slow answer", seconds: 10) { slow.withLock { $0 } != nil }
        #expect(slow.withLock { $0 } == 200, "the busy request itself is served whole")
        #expect(fake.readCount == 2, "the one that gave up was never sent")
        #expect(try keel.get("/").status == 200, "keel goes on")
    }

    /// nginx's default next_upstream (error timeout): with two servers, a request that got no byte of its answer —
    /// its connection closed after the read, or read_timeout passed — is tried once on the other server when it is
    /// idempotent; a POST is not sent twice and the client gets the failure (502, 504).
    @Test(arguments: [("close", "GET", 200), ("close", "POST", 502), ("stall", "GET", 200), ("stall", "POST", 504)])
    func anUnansweredIdempotentRequestIsTriedOnTheOtherServer(failure: String, method: String, status: Int) throws {
        let (badDirectory, goodDirectory) = (try Harness.makeTempDirectory(), try Harness.makeTempDirectory())
        defer { for directory in [badDirectory, goodDirectory] { try? FileManager.default.removeItem(atPath: directory) } }
        let bad = try FakeKeelPool(directory: badDirectory) { _, _, _ in failure == "close" ? .closeAfterRead : .stall(seconds: 5) }
        let good = try FakeKeelPool(directory: goodDirectory) { _, _, _ in .respond(Self.ok) }
        let keel = try FrontUnderTest(
            ["--event-loops", "1"],
            config: """
                [[listen]]
                address = "127.0.0.1:{PORT}"
                [upstream.app]
                servers = ["unix:\(bad.path)", "unix:\(good.path)"]
                read_timeout = "1s"
                [[route]]
                path = "/"
                uwsgi = "app"
                """)
        var statuses: [Int] = []
        // Round robin: within two requests one reaches the bad server.
        while bad.readCount == 0 && statuses.count < 2 {
            let socket = try TestSocket(tcpPort: keel.port)
            try socket.write("\(method) / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            statuses.append(try HTTPResponseReader(socket).next().status)
        }
        #expect(bad.readCount == 1, "the bad server read one request: \(statuses)")
        #expect(statuses.last == status, "\(statuses)\n\(keel.log)")
        #expect(statuses.dropLast().allSatisfy { $0 == 200 }, "\(statuses)")
        if status == 200 { #expect(keel.log.contains("trying another server"), "\(keel.log)") }
        // That failed attempt counts toward max_fails (1) whatever the method, as in nginx: the bad server is out
        // for fail_timeout, and the next requests go straight to the other one (none waits on the bad one again).
        #expect(keel.log.contains("server marked down for 10s"), "\(keel.log)")
        for _ in 0..<4 {
            let socket = try TestSocket(tcpPort: keel.port)
            try socket.write("\(method) / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            #expect(try HTTPResponseReader(socket).next().status == 200)
        }
        #expect(bad.readCount == 1, "a server marked down gets no request")
    }

    /// Bad answers on the wire: each gets the client a 502 (504 for the stall) and a log line, closes only that
    /// upstream connection, and keel goes on serving.
    static let badAnswers: [(String, FakeKeelPool.Action, Int, String)] = [
        ("malformed head", .raw(frameBytes() + Array("HTTP/1.1 2x0 Nope\r\n\r\n".utf8), close: false), 502, "malformed status line"),
        ("longer than declared", .raw(frameBytes() + Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef".utf8), close: false), 502, "longer than it declared"),
        ("unframed body", .raw(frameBytes() + Array("HTTP/1.1 200 OK\r\n\r\nabc".utf8), close: false), 502, "neither Content-Length nor chunked"),
        ("dies inside the head", .raw(frameBytes() + Array("HTTP/1.1 200 OK\r\nContent-Le".utf8), close: true), 502, "inside the response head"),
        ("bad frame", .raw([0x4B, 0, 0, 9], close: false), 502, "unknown kind 9"),
        ("stalls", .stall(seconds: 3), 504, "read_timeout"),
    ]

    @Test(arguments: badAnswers.indices)
    func badAnswersGetA502AndKeelGoesOn(index: Int) throws {
        let (name, action, status, logged) = Self.badAnswers[index]
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fake = try FakeKeelPool(directory: directory) { _, request, _ in request == 0 ? action : .respond(Self.ok) }
        let keel = try Self.keel(fake, readTimeout: "1s")
        let reply = try keel.get("/")
        #expect(reply.status == status, "\(name)")
        try Harness.waitUntil("the log line for \(name)") { keel.log.contains(logged) }
        for _ in 0..<3 { #expect(try keel.get("/").status == 200, "\(name): keel goes on") }
        #expect(keel.process.isRunning)
    }

    static func frameBytes() -> [UInt8] {
        var buffer = ByteBuffer()
        KeelWire.writeResponseFrame(KeelWire.Responder(pid: 7, capacity: 1), into: &buffer)
        return Array(buffer.readableBytesView)
    }
}

/// keel-pool's side of the wire's bad input: one request at a time, nothing but packets between them.
@Suite("keel wire: keel-pool refuses bad peers", .serialized, .timeLimit(.minutes(2)))
struct KeelWirePoolTests {
    static func packet(_ uri: String, offer: Bool = true) throws -> [UInt8] {
        var buffer = ByteBuffer()
        try UWSGIPacket.writeRequestHead(
            vars: UWSGIClient.vars(uri: uri).map { (name: $0.0, value: $0.1) }, modifier2: offer ? KeelWire.offer : 0,
            into: &buffer)
        return Array(buffer.readableBytesView)
    }

    @Test func aSecondPacketBeforeTheAnswerClosesTheConnectionWithALogLine() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let socket = try TestSocket(unixPath: pool.socketPath!)
        try socket.write(try Self.packet("/a") + Self.packet("/b"))
        let raw = try socket.readToEOF()
        #expect(raw.count > 10 && raw[0] == KeelWire.frameMarker, "the first request is answered, framed")
        #expect(String(decoding: raw, as: UTF8.self).components(separatedBy: "HTTP/1.1 200").count == 2, "only the first")
        try Harness.waitUntil("the log line") { pool.log.contains("before its answer") }
    }

    @Test func garbageBetweenPacketsClosesTheConnectionWithALogLine() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let socket = try TestSocket(unixPath: pool.socketPath!)
        try socket.write(try Self.packet("/a"))
        var first = try socket.readSome()
        while String(decoding: first, as: UTF8.self).hasSuffix("Hello world!\n") == false && first.count < 200 {
            first += try socket.readSome()
        }
        try socket.write([7, 7, 7, 7, 7, 7])
        #expect(try socket.readToEOF().isEmpty, "closed without an answer")
        try Harness.waitUntil("the log line") { pool.log.contains("unsupported uwsgi modifier1 7") }
        // The worker goes on.
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(reply.status == 200)
    }

    @Test func plainUWSGIPeersStillGetAResponseEndedByTheClose() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "stream"])
        let raw = try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/?chunks=3&size=10"))
        let reply = try UWSGIClient.parse(raw)
        #expect(reply.status == 200)
        #expect(reply.header("Transfer-Encoding") == nil, "close-delimited, as nginx's uwsgi module expects")
        #expect(reply.body.count == 30)
    }
}
