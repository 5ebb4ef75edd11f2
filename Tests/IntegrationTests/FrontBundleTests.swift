import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel with `[[pool]]`: one command starts front and pool, heals the pool, and TERM leaves nothing behind.
@Suite("keel bundle and lifecycle", .serialized, .timeLimit(.minutes(3)))
struct FrontBundleTests {
    static func bundleConfig(processes: Int = 2, app: String = "hello", extraPoolArgs: String = "") -> String {
        """
        [[listen]]
        address = "127.0.0.1:{PORT}"
        [log]
        access = "{DIR}/access.log"
        [limits]
        graceful_timeout = "10s"
        [[pool]]
        name = "app"
        args = ["--socket", "{DIR}/app.sock", "--processes", "\(processes)", "--app", "\(app)"\(extraPoolArgs)]
        [[route]]
        uwsgi = "unix:{DIR}/app.sock"
        """
    }

    /// Every process in keel's tree (children and grandchildren).
    static func tree(_ pid: pid_t) -> [pid_t] {
        Harness.children(of: pid).flatMap { [$0] + tree($0) }
    }

    @Test func oneCommandStartsBothHealsThePoolAndTermLeavesNothing() throws {
        let keel = try FrontUnderTest(config: Self.bundleConfig())
        #expect(try keel.get("/").text == "Hello world!\n")
        let poolMaster = try #require(Harness.children(of: keel.process.pid).first)
        let everything = Self.tree(keel.process.pid)
        #expect(everything.count == 3, "keel-pool master and two workers: \(everything)")

        // The pool master dies hard: keel restarts it and requests succeed again.
        kill(poolMaster, SIGKILL)
        try Harness.waitUntil("a new pool master", seconds: 20) {
            let children = Harness.children(of: keel.process.pid)
            return !children.isEmpty && !children.contains(poolMaster)
        }
        try Harness.waitUntil("requests to succeed again", seconds: 20) { (try? keel.get("/").status) == 200 }
        #expect(keel.log.contains("restarting"))

        let before = Self.tree(keel.process.pid)
        #expect(try keel.stop(signal: SIGTERM) == 0)
        try Harness.waitUntil("every process of the bundle to exit", seconds: 20) {
            before.allSatisfy { !Harness.processExists($0) }
        }
        let access = try String(contentsOfFile: keel.directory + "/access.log", encoding: .utf8)
        #expect(access.contains("\"GET / HTTP/1.1\" 200 13"))
    }

    /// A pool keel spawned is tied to it (PR_SET_PDEATHSIG set by keel-pool from KEEL_PARENT_PID): keel killed
    /// hard, the pool gets TERM and nothing of it is left 2 s later.
    @Test func poolsDieWithKeelEvenWhenKeelIsKilled() throws {
        let keel = try FrontUnderTest(config: Self.bundleConfig())
        #expect(try keel.get("/").text == "Hello world!\n")
        let pool = Self.tree(keel.process.pid)
        #expect(pool.count == 3, "keel-pool master and two workers: \(pool)")
        kill(keel.process.pid, SIGKILL)
        _ = try keel.process.waitForExit(seconds: 5)
        try Harness.waitUntil("every pool process to exit", seconds: 2) { pool.allSatisfy { !Harness.processExists($0) } }
    }

    /// keel alone in a directory, no keel-pool beside it nor $KEEL_POOL: `keel pool` is keel-pool (the same command
    /// line, errors included), and a [[pool]] runs from keel's own binary, workers too; TERM leaves nothing.
    @Test func theKeelBinaryAloneRunsItsPools() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keelAlone = directory + "/keel"
        try FileManager.default.copyItem(atPath: Harness.keelPath, toPath: keelAlone)
        let help = try TLSTools.shell("env -u KEEL_POOL \(keelAlone) pool --help", seconds: 20)
        #expect(help.output.contains("--max-requests") && help.output.contains("--harakiri"), "\(help.output)")
        let bad = try TLSTools.shell("env -u KEEL_POOL \(keelAlone) pool --app nope --http-socket 127.0.0.1:1 2>&1", seconds: 20)
        #expect(bad.code != 0 && bad.output.contains("--app nope: unknown app"), "\(bad.output)")

        let port = try Harness.freePort()
        try FrontUnderTest.render(Self.bundleConfig(), port: port, directory: directory)
            .write(toFile: directory + "/keel.toml", atomically: true, encoding: .utf8)
        let keel = try ManagedProcess(
            "/usr/bin/env", ["-u", "KEEL_POOL", keelAlone, "--config", directory + "/keel.toml"], logPath: directory + "/keel.log")
        try Harness.waitUntil("keel to serve through its own pool", seconds: 30) {
            (try? HTTPClient.get(port: port, "/").text) == "Hello world!\n"
        }
        let tree = Self.tree(keel.pid)
        // env execs keel; keel → `keel pool` master → two `keel pool _worker`s.
        let commands = tree.compactMap { try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8) }
            .map { $0.replacingOccurrences(of: "\0", with: " ") }
        #expect(commands.filter { $0.hasPrefix(keelAlone + " pool ") }.count == 3, "\(commands)")
        #expect(commands.filter { $0.contains(" pool _worker ") }.count == 2, "\(commands)")
        #expect(try keel.stop(signal: SIGTERM) == 0)
        try Harness.waitUntil("every process of the bundle to exit", seconds: 20) { tree.allSatisfy { !Harness.processExists($0) } }
    }

    /// SwiftNIO warns (and will crash) when something resolves a promise on a loop that has shut down; keel's stop
    /// order must leave nothing that does, with kept upstream connections open, on TERM and on INT.
    @Test(arguments: [SIGTERM, SIGINT])
    func stoppingPrintsNoEventLoopShutdownError(signal: Int32) throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--processes", "2"])
        let keel = try FrontUnderTest(["--uwsgi", "unix:" + pool.socketPath!, "--event-loops", "2"])
        for _ in 0..<4 { #expect(try keel.get("/").status == 200) }
        #expect(try keel.stop(signal: signal) == 0)
        #expect(keel.log.contains("keel stopped"))
        #expect(!keel.log.contains("Cannot schedule tasks"), "\(keel.log)")
    }

    @Test func termFinishesRequestsInFlight() throws {
        let keel = try FrontUnderTest(config: Self.bundleConfig(app: "sleep", extraPoolArgs: ", \"--stats\", \"{DIR}/stats.sock\""))
        let socket = try TestSocket(tcpPort: keel.port)
        try socket.write("GET /?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        // The pool's stats show the request running in a worker: it went through keel and is in flight.
        try Harness.waitUntil("the request to reach a worker", seconds: 10) {
            let stats = try TestSocket(unixPath: keel.directory + "/stats.sock").readToEOF()
            return String(decoding: stats, as: UTF8.self).contains("GET /?ms=1500")
        }
        kill(keel.process.pid, SIGTERM)
        let reply = try HTTPResponseReader(socket).next()
        #expect(reply.status == 200)
        #expect(try keel.process.waitForExit(seconds: 20) == 0)
        #expect((try? TestSocket(tcpPort: keel.port)) == nil, "no longer accepting")
    }

    @Test func hupReloadsRoutesAndABadConfigKeepsTheOldOne() throws {
        let directory = try Harness.makeTempDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/site", withIntermediateDirectories: true)
        try "v1\n".write(toFile: directory + "/site/index.html", atomically: true, encoding: .utf8)
        let first = """
            [[listen]]
            address = "127.0.0.1:{PORT}"
            [log]
            access = "off"
            [[route]]
            path = "/"
            return = 200
            body = "first\\n"
            """
        let keel = try FrontUnderTest(config: first, directory: directory)
        #expect(try keel.get("/").text == "first\n")
        // A keep-alive connection opened before the reload survives it.
        let kept = try TestSocket(tcpPort: keel.port)
        let keptReader = HTTPResponseReader(kept)
        try kept.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try keptReader.next().text == "first\n")

        try keel.rewriteConfig(first.replacingOccurrences(of: "first", with: "second") + """

            [[route]]
            path = "/site/"
            static = "{DIR}/site"
            """)
        kill(keel.process.pid, SIGHUP)
        try Harness.waitUntil("the new routes", seconds: 10) { (try? keel.get("/").text) == "second\n" }
        #expect(try keel.get("/site/").text == "v1\n")
        try kept.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try keptReader.next().text == "second\n")

        try keel.rewriteConfig(first + "\n[[route]]\npath = \"/x\"\nuwsgi = \"nosuchupstream\"\n")
        kill(keel.process.pid, SIGHUP)
        try Harness.waitUntil("the reload error in the log", seconds: 10) { keel.log.contains("reload failed") }
        #expect(keel.log.contains("nosuchupstream"))
        #expect(try keel.get("/").text == "second\n")
        #expect(keel.process.isRunning)
    }

    @Test func checkNamesTheBadKeyAndExits2() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "[limits]\nclient_max_body_sise = \"1m\"\n".write(toFile: directory + "/bad.toml", atomically: true, encoding: .utf8)
        let check = try ManagedProcess(Harness.keelPath, ["check", "--config", directory + "/bad.toml"], logPath: directory + "/check.log")
        #expect(try check.waitForExit(seconds: 10) == 2)
        #expect(check.log.contains("client_max_body_sise"))
        #expect(check.log.contains("client_max_body_size"), "suggests the key it probably meant")

        let run = try ManagedProcess(Harness.keelPath, ["--config", directory + "/bad.toml"], logPath: directory + "/run.log")
        #expect(try run.waitForExit(seconds: 10) == 2, "a bad config never starts a half-working server")
    }

    @Test func embeddedDefaultServesTheDemo() throws {
        // The demo binds 127.0.0.1:8080; skip rather than fail when something else on this machine holds it.
        if (try? TestSocket(tcpPort: 8080)) != nil { return }
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = Harness.keelPoolPath
        setenv("KEEL_POOL", Harness.keelPoolPath, 1)
        let keel = try ManagedProcess(Harness.keelPath, [], logPath: directory + "/demo.log")
        defer { try? keel.stop(signal: SIGTERM, seconds: 30) }
        try Harness.waitUntil("the demo on 8080", seconds: 30) {
            guard keel.isRunning else { throw HarnessError("keel exited:\n\(keel.log)") }
            return (try? HTTPClient.get(port: 8080, "/").status) == 200
        }
        #expect(try HTTPClient.get(port: 8080, "/").text == "Hello world!\n")
        #expect(try HTTPClient.get(port: 8080, "/env").text.contains("wsgi.version = (1, 0)"))
        #expect(try HTTPClient.get(port: 8080, "/swift/x").text == "Hello world!\n")
        #expect(keel.log.contains("demo running"))
        // The live status page is on, for loopback clients, with both pools' stats behind it.
        try Harness.waitUntil("both pools in the status JSON") {
            let status = try HTTPClient.get(port: 8080, "/keel/status.json").text
            return status.contains("\"name\": \"wsgi\"") && status.contains("\"name\": \"swift\"")
                && status.contains("\"threads_per_worker\": 4")
        }
        #expect(try HTTPClient.get(port: 8080, "/keel/status").text.contains("<html"))
        let https = try TLSTools.shell("curl -sk https://127.0.0.1:8443/env")
        #expect(https.output.contains("'wsgi.url_scheme' = 'https'") || https.output.contains("wsgi.url_scheme = 'https'"), "\(https.output)")
        // The app the demo runs is the one in deploy/examples (carried in the binary).
        let demoApp = try #require(keel.log.components(separatedBy: "--wsgi-file ").dropFirst().first?.split(separator: " ").first)
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy/examples/wsgi/app.py")
        #expect(try String(contentsOfFile: String(demoApp), encoding: .utf8) == String(contentsOf: example, encoding: .utf8))
        let tree = Self.tree(keel.pid)
        #expect(try keel.stop(signal: SIGTERM, seconds: 30) == 0)
        try Harness.waitUntil("the demo pool to exit", seconds: 20) { tree.allSatisfy { !Harness.processExists($0) } }
        #expect(!FileManager.default.fileExists(atPath: (String(demoApp) as NSString).deletingLastPathComponent))
    }

    @Test func poolFlagTakesKeelPoolFlagsAsItsValue() throws {
        let directory = try Harness.makeTempDirectory()
        let keel = try FrontUnderTest(["--pool", "--socket \(directory)/a.sock --app hello", "--access-log", "off"])
        #expect(try keel.get("/").text == "Hello world!\n")
        #expect(try keel.stop() == 0)  // TERM stops the pool too (a SIGKILLed keel would leave it running)
    }

    /// (state, parent pid) of a process, from /proc/PID/stat.
    static func stateAndParent(_ pid: pid_t) -> (Character, pid_t)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        return (state, parent)
    }

    @Test func asPID1KeelReapsOrphans() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A "keel-pool" that first leaves an orphan behind: the subshell exits, its sleep is re-parented to PID 1.
        let wrapper = directory + "/keel-pool-with-orphan"
        try "#!/bin/sh\n(sleep 0.3 &)\nexec \"\(Harness.keelPoolPath)\" \"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        let config = FrontUnderTest.render(Self.bundleConfig(processes: 1), port: try Harness.freePort(), directory: directory)
        try config.write(toFile: directory + "/keel.toml", atomically: true, encoding: .utf8)
        setenv("KEEL_POOL", wrapper, 1)
        defer { setenv("KEEL_POOL", Harness.keelPoolPath, 1) }
        // A new PID namespace makes keel PID 1 there, as in a container.
        let unshare = try ManagedProcess(
            "/usr/bin/unshare", ["--pid", "--fork", "--mount-proc", Harness.keelPath, "--config", directory + "/keel.toml"],
            logPath: directory + "/keel.log")
        var keelPid: pid_t = 0
        try Harness.waitUntil("keel inside the namespace", seconds: 10) {
            guard unshare.isRunning else { throw HarnessError("unshare failed (needs root):\n\(unshare.log)") }
            keelPid = Harness.children(of: unshare.pid).first ?? 0
            return keelPid != 0 && unshare.log.contains("ready on")
        }
        // The orphaned sleep ends within 0.3 s; keel must reap it rather than leave a zombie.
        try Harness.waitUntil("the orphan to be reaped", seconds: 10) {
            let children = Harness.children(of: keelPid)
            return !children.contains { Self.stateAndParent($0)?.0 == "Z" } && children.count == 1
        }
        kill(keelPid, SIGTERM)
        #expect(try unshare.waitForExit(seconds: 30) == 0)
    }
}
