import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// systemd socket activation, with Debian's `systemd-socket-activate` (it execs the service on the first
/// connection, as a socket unit with Accept=no does) and Tests/systemd/socket_holder.py for restarts (it holds the
/// socket across them, as systemd does).
@Suite("systemd socket activation", .serialized, .timeLimit(.minutes(3)))
struct SocketActivationTests {
    static let holder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../systemd/socket_holder.py").standardizedFileURL.path

    /// `systemd-socket-activate ARGUMENTS`; its pid is the service's once it has exec'ed it.
    final class Activated {
        let shell: ManagedProcess

        /// `prefix` runs before systemd-socket-activate (e.g. `env -i PATH=…` for an empty environment).
        init(_ arguments: [String], prefix: [String] = [], path: String?, directory: String, log: String) throws {
            _ = Harness.keelPoolPath  // KEEL_POOL_ALLOW_ROOT, passed on with -E
            shell = try ManagedProcess(
                "/usr/bin/env", prefix + ["/usr/bin/systemd-socket-activate", "-E", "KEEL_POOL_ALLOW_ROOT"] + arguments,
                logPath: directory + "/" + log)
            // A connection made before it listens would be refused; it ignores TERM until it has exec'ed the service.
            try Harness.waitUntil("systemd-socket-activate to listen", seconds: 10) {
                if let path { var info = stat(); return lstat(path, &info) == 0 }
                return shell.log.contains("Listening on")
            }
        }

        var log: String { shell.log }
        var pid: pid_t { shell.pid }

        /// TERM to the service (systemd-socket-activate's pid, which it exec'ed), then its exit code.
        func stop() throws -> Int32 { try shell.stop(signal: SIGTERM, seconds: 40) }

        func waitForExit(seconds: Double) throws -> Int32 { try shell.waitForExit(seconds: seconds) }

        deinit { if shell.isRunning { try? shell.stop(signal: SIGKILL) } }
    }

    static func activate(_ arguments: [String], path: String? = nil, directory: String, log: String = "activate.log") throws -> Activated {
        try Activated(arguments, path: path, directory: directory, log: log)
    }

    static func curl(_ url: String) throws -> String {
        try TLSTools.shell("curl -s --max-time 10 -w ' %{http_code}' \(url)", seconds: 15).output
    }

    /// A socket named like a [[listen]] replaces that listener's bind: keel serves on the inherited address only.
    @Test func keelServesOnTheSocketItWasGivenByName() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (configured, inherited) = (try Harness.freePort(), try Harness.freePort())
        try """
        [[listen]]
        address = "127.0.0.1:\(configured)"
        name = "web"

        [[route]]
        path = "/"
        return = 200
        body = "activated\\n"
        """.write(toFile: directory + "/keel.toml", atomically: true, encoding: .utf8)
        let keel = try Self.activate(
            ["-l", "127.0.0.1:\(inherited)", "--fdname=web", Harness.keelPath, "run", "--config", directory + "/keel.toml"],
            directory: directory)
        // The first connection starts keel and waits in the socket's queue until keel accepts it.
        #expect(try Self.curl("http://127.0.0.1:\(inherited)/") == "activated\n 200", "\(keel.log)")
        #expect(try Self.curl("http://127.0.0.1:\(configured)/").hasSuffix(" 000"), "the configured address must not be bound")
        #expect(keel.log.contains("inherited from systemd"), "\(keel.log)")
        #expect(try keel.stop() == 0, "\(keel.log)")
    }

    @Test func anInheritedSocketThatMatchesNoListenerStopsKeelWithOneLine() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (configured, stray) = (try Harness.freePort(), try Harness.freePort())
        let keel = try Self.activate(
            ["-l", "127.0.0.1:\(stray)", Harness.keelPath, "run", "--listen", "127.0.0.1:\(configured)", "--static", "/=\(directory)"],
            directory: directory)
        _ = try Self.curl("http://127.0.0.1:\(stray)/")
        #expect(try keel.waitForExit(seconds: 15) == 2, "\(keel.log)")
        #expect(keel.log.contains("inherited socket 3 (127.0.0.1:\(stray)) matches no configured listener"), "\(keel.log)")
    }

    /// keel-pool takes a unix socket by its path and leaves the file to the socket unit; with no socket flag, one
    /// named "http" serves HTTP.
    @Test func keelPoolServesOnInheritedSocketsAndLeavesTheFile() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/app.sock"
        let pool = try Self.activate(
            ["-l", path, Harness.keelPoolPath, "--socket", path, "--app", "hello", "--processes", "1"], path: path, directory: directory)
        let keel = try FrontUnderTest(["--uwsgi", "unix:\(path)"])
        #expect(try keel.get("/").text == "Hello world!\n", "\(pool.log)")
        #expect(pool.log.contains("uwsgi socket on \(path) inherited from systemd"), "\(pool.log)")
        #expect(try pool.stop() == 0, "\(pool.log)")
        var info = stat()
        #expect(lstat(path, &info) == 0, "the socket unit's file must stay")

        let port = try Harness.freePort()
        let http = try Self.activate(
            ["-l", "127.0.0.1:\(port)", "--fdname=http", Harness.keelPoolPath, "--app", "hello", "--processes", "1"],
            directory: directory, log: "http.log")
        #expect(try Self.curl("http://127.0.0.1:\(port)/") == "Hello world!\n 200", "\(http.log)")
        #expect(try http.stop() == 0, "\(http.log)")
    }

    /// The point of socket activation: while the service restarts, connections wait in the socket's queue.
    @Test(arguments: ["keel", "keel-pool"])
    func aRestartLosesNoConnectionQueuedInTheSocket(service: String) throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try Harness.freePort()
        let command = service == "keel"
            ? [Harness.keelPath, "run", "--listen", "127.0.0.1:\(port)", "--static", "/=\(directory)"]
            : [Harness.keelPoolPath, "--http-socket", "127.0.0.1:\(port)", "--app", "hello", "--processes", "1", "--threads", "4"]
        try "served\n".write(toFile: directory + "/index.html", atomically: true, encoding: .utf8)
        _ = Harness.keelPoolPath
        let holder = try ManagedProcess(
            "/usr/bin/python3", [Self.holder, "--listen", "127.0.0.1:\(port)", "--starts", "2", "--"] + command,
            logPath: directory + "/holder.log")
        defer { #expect((try? holder.stop()) == 0, "the holder stops its service on TERM: \(holder.log)") }
        try Harness.waitUntil("the first \(service) to serve", seconds: 20) { try Self.curl("http://127.0.0.1:\(port)/").hasSuffix(" 200") }
        let first = try #require(holder.log.split(separator: "\n").first { $0.hasPrefix("started ") }.flatMap { Int32($0.dropFirst(8)) })
        // 40 requests over two seconds; the first service is stopped (TERM, a graceful stop) after the tenth.
        let load = """
            pids=""
            for i in $(seq 1 40); do
                curl -s -o /dev/null -w '%{http_code}\\n' --max-time 20 http://127.0.0.1:\(port)/ >> \(directory)/codes &
                pids="$pids $!"
                [ $i -eq 10 ] && kill -TERM \(first)
                sleep 0.05
            done
            wait $pids
            """
        _ = try TLSTools.shell(load, seconds: 60)
        let codes = (try String(contentsOfFile: directory + "/codes", encoding: .utf8)).split(separator: "\n")
        #expect(codes.count == 40 && codes.allSatisfy { $0 == "200" }, "\(codes)\n\(holder.log)")
        #expect(holder.log.components(separatedBy: "started ").count - 1 == 2, "a second \(service) must have taken over: \(holder.log)")
    }
}
