import Foundation
import NIOCore
import Testing
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

@Suite("master lifecycle", .timeLimit(.minutes(2)))
struct MasterLifecycleTests {
    @Test func crashedWorkerIsRespawnedAndTheNextRequestSucceeds() throws {
        let pool = try PoolUnderTest(["--app", "crash"])
        let before = pool.workers
        #expect(before.count == 1)
        #expect(throws: (any Error).self) { try HTTPClient.get(port: pool.httpPort!, "/") }
        try Harness.waitUntil("a respawned worker") {
            let now = pool.workers
            return now.count == 1 && now != before
        }
        #expect(pool.log.contains("killed by SIGKILL; respawning"))
        try pool.stop()
    }

    @Test func nextRequestAfterACrashIsServed() throws {
        // `crash` kills its worker; with an echo-capable app we check a request right after still works.
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try Harness.freePort()
        let process = try ManagedProcess(
            Harness.keelPoolPath, ["--app", "crash", "--http-socket", "127.0.0.1:\(port)", "--processes", "2"],
            logPath: directory + "/log")
        try Harness.waitUntil("two workers") { Harness.children(of: process.pid).count == 2 }
        for _ in 0..<3 { _ = try? HTTPClient.get(port: port, "/") }
        try Harness.waitUntil("three respawns") { process.log.components(separatedBy: "respawning").count > 3 }
        try Harness.waitUntil("two workers again") { Harness.children(of: process.pid).count == 2 }
        #expect(try process.stop() == 0)
    }

    @Test func termLeavesNoProcessNoSocketFileNoPidfile() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = try PoolUnderTest(http: true, uwsgi: true, ["--app", "hello", "--processes", "3", "--pidfile", "\(NSTemporaryDirectory())/kp-\(getpid()).pid"])
        let pidfile = "\(NSTemporaryDirectory())/kp-\(getpid()).pid"
        let pidText = try String(contentsOfFile: pidfile, encoding: .utf8)
        #expect(pidText == "\(pool.process.pid)\n")
        let workers = pool.workers
        #expect(workers.count == 3)
        #expect(try pool.stop() == 0)
        for worker in workers { #expect(!Harness.processExists(worker), "worker \(worker) outlived the master") }
        #expect(!FileManager.default.fileExists(atPath: pool.socketPath!))
        #expect(!FileManager.default.fileExists(atPath: pidfile))
        #expect(throws: (any Error).self) { try TestSocket(tcpPort: pool.httpPort!) }
    }

    /// TERM with a keel-wire connection kept open: the worker says goodbye and waits (1 s at most) for the peer to
    /// close it. Its copy of a TCP listener is closed before that wait, so a connect meanwhile is refused at once
    /// (keel tries another server) instead of completing in the kernel and being reset when the worker exits.
    @Test func afterTermATCPSocketRefusesNewConnectionsWhileAWorkerWaitsForItsGoodbyeToBeRead() throws {
        let port = try Harness.freePort()
        let pool = try PoolUnderTest(
            http: false, uwsgi: false, ["--app", "hello", "--socket", "127.0.0.1:\(port)", "--processes", "1", "--threads", "1"])
        let kept = try TestSocket(tcpPort: port)
        var packet = ByteBuffer()
        try UWSGIPacket.writeRequestHead(
            vars: UWSGIClient.vars(uri: "/").map { (name: $0.0, value: $0.1) }, modifier2: KeelWire.offer, into: &packet)
        try kept.write(Array(packet.readableBytesView))
        var received: [UInt8] = []
        try Harness.waitUntil("the framed answer", seconds: 10) {
            received += try kept.readSome()
            return String(decoding: received, as: UTF8.self).contains("Hello")
        }
        kill(pool.process.pid, SIGTERM)
        try Harness.waitUntil("the worker's goodbye", seconds: 10) {
            received += try kept.readSome()
            return received.suffix(KeelWire.goodbyeBytes.count).elementsEqual(KeelWire.goodbyeBytes)
        }
        // The worker now waits up to 1 s for our close, which does not come: well within it, connects are refused.
        var refused = false
        try Harness.waitUntil("a connect to be refused while the worker waits", seconds: 0.6) {
            refused = (try? TestSocket(tcpPort: port)) == nil
            return refused
        }
        #expect(refused)
        #expect(pool.workers.count == 1, "the worker was still waiting for the goodbye's close")
        #expect(try pool.stop() == 0)
    }

    /// Requests already sent when TERM arrives (running, queued for a thread, or still in the kernel's
    /// backlog) are all answered; afterwards nothing listens any more.
    @Test(arguments: [false, true])
    func termAnswersEveryRequestAlreadySent(uwsgi: Bool) throws {
        let pool = try PoolUnderTest(http: !uwsgi, uwsgi: uwsgi, ["--app", "sleep", "--threads", "1", "--processes", "1"])
        // Three requests on one worker with one thread: one runs, two wait (in the backlog).
        var sockets: [TestSocket] = []
        for _ in 0..<3 {
            if uwsgi {
                let socket = try TestSocket(unixPath: pool.socketPath!)
                var packet = ByteBufferShim.packet(vars: UWSGIClient.vars(uri: "/?ms=300"))
                try socket.write(packet.readAll())
                sockets.append(socket)
            } else {
                let socket = try TestSocket(tcpPort: pool.httpPort!)
                try socket.write("GET /?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
                sockets.append(socket)
            }
        }
        kill(pool.process.pid, SIGTERM)
        for socket in sockets {
            let reply = uwsgi
                ? try UWSGIClient.parse(try socket.readToEOF()) : try HTTPResponseReader(socket).next()
            #expect(reply.status == 200)
            #expect(reply.text == "slept 300 ms\n")
        }
        #expect(try pool.process.waitForExit(seconds: 10) == 0)
        if uwsgi {
            #expect(!FileManager.default.fileExists(atPath: pool.socketPath!))
        } else {
            #expect(throws: (any Error).self) { try TestSocket(tcpPort: pool.httpPort!) }
        }
    }

    /// TERM in the middle of a load: every request that got a connection is answered; after the socket
    /// is gone, new connections are refused (that is the only failure allowed); the master exits in time.
    @Test func termDuringLoadCompletesInFlightAndRefusesNewConnections() throws {
        let pool = try PoolUnderTest(
            http: false, uwsgi: true, ["--app", "sleep", "--processes", "2", "--threads", "2", "--graceful-timeout", "10"])
        let path = pool.socketPath!
        let refused = ResultBox()
        let load = LoadClient(threads: 6, total: 1_000_000, seconds: 6) {
            let socket: TestSocket
            do {
                socket = try TestSocket(unixPath: path)
            } catch {
                refused.increment()  // the socket file is gone: refused, as it should be
                return 200
            }
            var packet = ByteBufferShim.packet(vars: UWSGIClient.vars(uri: "/?ms=200"))
            try socket.write(packet.readAll())
            return try UWSGIClient.parse(try socket.readToEOF()).status
        }
        usleep(1_000_000)
        let term = Date()
        kill(pool.process.pid, SIGTERM)
        #expect(try pool.process.waitForExit(seconds: 12) == 0)
        #expect(Date().timeIntervalSince(term) < 10, "exit within --graceful-timeout")
        load.stop()
        load.wait()
        #expect(load.failures.isEmpty, "\(load.failures.count) accepted requests failed, first: \(load.failures.first ?? "")")
        #expect(load.succeeded > refused.value, "requests were served before TERM")
        #expect(refused.value > 0, "new connections after TERM are refused")
    }

    @Test func intStopsAtOnce() throws {
        let pool = try PoolUnderTest(["--app", "sleep"])
        let port = pool.httpPort!
        DispatchQueue.global().async { _ = try? HTTPClient.get(port: port, "/?ms=5000") }
        usleep(200_000)
        let start = Date()
        let workers = pool.workers
        try pool.stop(signal: SIGINT)
        #expect(Date().timeIntervalSince(start) < 3)
        for worker in workers { #expect(!Harness.processExists(worker)) }
    }

    @Test(arguments: [("660", 0o660), ("666", 0o666), ("600", 0o600)])
    func chmodSocketSetsTheFileMode(flag: String, mode: Int) throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--chmod-socket", flag])
        let attributes = try FileManager.default.attributesOfItem(atPath: pool.socketPath!)
        #expect((attributes[.posixPermissions] as? Int) == mode)
        try pool.stop()
    }

    @Test(.enabled(if: getuid() == 0, "dropping privileges needs root"))
    func workersRunAsTheGivenUserAndGroup() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--uid", "nobody", "--gid", "nogroup"])
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(reply.status == 200)
        let worker = try #require(pool.workers.first)
        let status = try String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)
        let uids = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst()
        let gids = status.split(separator: "\n").first { $0.hasPrefix("Gid:") }?.split(separator: "\t").dropFirst()
        #expect(uids.map(Array.init) == ["65534", "65534", "65534", "65534"])
        #expect(gids.map(Array.init) == ["65534", "65534", "65534", "65534"])
        // The master keeps root (it owns the sockets and must be able to clean up).
        let master = try String(contentsOfFile: "/proc/\(pool.process.pid)/status", encoding: .utf8)
        #expect(master.contains("Uid:\t0\t"))
        try pool.stop()
    }

    /// --uid alone takes the user's own group and drops root's groups, supplementary ones included.
    @Test(.enabled(if: getuid() == 0, "dropping privileges needs root"))
    func uidAloneTakesTheUsersGroupAndNoneOfRoots() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--uid", "nobody"])
        let worker = try #require(pool.workers.first)
        let status = try String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)
        #expect(status.contains("Uid:\t65534\t65534\t65534\t65534"))
        #expect(status.contains("Gid:\t65534\t65534\t65534\t65534"))
        #expect(status.contains("Groups:\t65534"), "\(status)")
        try pool.stop()
    }

    @Test(.enabled(if: getuid() == 0, "changing a file's owner needs root"))
    func chownSocketSetsTheOwner() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--chown-socket", "nobody:nogroup"])
        let attributes = try FileManager.default.attributesOfItem(atPath: pool.socketPath!)
        #expect((attributes[.ownerAccountID] as? Int) == 65534)
        #expect((attributes[.groupOwnerAccountID] as? Int) == 65534)
        try pool.stop()
    }

    @Test func staleSocketFileIsReplaced() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/stale.sock"
        // A socket file whose owner is gone: bound, never listened on, closed.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        #expect(FileManager.default.fileExists(atPath: path))
        let process = try ManagedProcess(Harness.keelPoolPath, ["--app", "hello", "--socket", path], logPath: directory + "/log")
        try Harness.waitUntil("the stale file to be replaced") { process.log.contains("spawned worker") }
        #expect(process.log.contains("removing stale socket file \(path)"))
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: path, vars: UWSGIClient.vars(uri: "/")))
        #expect(reply.status == 200)
        #expect(try process.stop() == 0)
    }

    @Test func liveSocketIsRefusedWithAClearMessage() throws {
        let first = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let second = try ManagedProcess(
            Harness.keelPoolPath, ["--app", "hello", "--socket", first.socketPath!],
            logPath: first.directory + "/second.log")
        #expect(try second.waitForExit(seconds: 10) == 1)
        #expect(second.log.contains("address in use"))
        #expect(second.log.split(separator: "\n").filter { $0.contains("error") }.count == 1)
        // The first server is untouched.
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: first.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(reply.status == 200)
        try first.stop()
    }

    @Test func tcpAddressInUseIsRefused() throws {
        let first = try PoolUnderTest(["--app", "hello"])
        let second = try ManagedProcess(
            Harness.keelPoolPath, ["--app", "hello", "--http-socket", "127.0.0.1:\(first.httpPort!)"],
            logPath: first.directory + "/second.log")
        #expect(try second.waitForExit(seconds: 10) == 1)
        #expect(second.log.contains("127.0.0.1:\(first.httpPort!): address in use"))
        try first.stop()
    }

    @Test func workersThatCannotStartEndTheMasterAfterFiveTries() throws {
        // Under a 400 MB address-space limit a worker cannot start 200 threads (8 MiB stacks), so it dies before "ready".
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/app.sock"
        let process = try ManagedProcess(
            "/bin/sh",
            ["-c", "ulimit -v 400000 && exec \(Harness.keelPoolPath) --app hello --threads 200 --socket \(socket)"],
            logPath: directory + "/log")
        #expect(try process.waitForExit(seconds: 30) == 1)
        let log = process.log
        #expect(log.contains("workers failed to start 5 times in a row; giving up. Last error: cannot start thread"))
        #expect(log.contains("lower --threads"))
        #expect(log.components(separatedBy: "spawned worker").count - 1 == 5)
        #expect(!FileManager.default.fileExists(atPath: socket))
    }
}

final class ResultBox: @unchecked Sendable {
    let created = Date()
    private let lock = NSLock()
    private var stored = 0
    func set(_ value: Int) { lock.withLock { stored = value } }
    func increment() { lock.withLock { stored += 1 } }
    var value: Int { lock.withLock { stored } }
}
