import Foundation
import Testing

/// Bad flags end with one clear line that names the flag, and `check` validates without serving.
@Suite("keel-pool CLI", .timeLimit(.minutes(3)))  // bounds a hang; a queue behind blocking suites on the 2-thread pool can take ~60 s
struct CLITests {
    static func run(_ arguments: [String]) throws -> (code: Int32, output: String) {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try ManagedProcess(Harness.keelPoolPath, arguments, logPath: directory + "/out")
        let code = try process.waitForExit(seconds: 20)
        return (code, process.log)
    }

    @Test(arguments: [
        (["--app", "nope", "--http-socket", "127.0.0.1:1"], "--app nope: unknown app"),
        (["--app", "hello"], "no socket to serve on"),
        (["--http-socket", "127.0.0.1:1"], "no app to serve: give --app"),
        (["--app", "hello", "--http-socket", "127.0.0.1:99999"], "port must be a number from 0 to 65535"),
        (["--app", "hello", "--http-socket", "nohost"], "expected a unix socket path or HOST:PORT"),
        (["--app", "hello", "--processes", "0", "--http-socket", ":1"], "--processes 0"),
        (["--app", "hello", "--threads=-2", "--http-socket", ":1"], "--threads -2"),
        (["--app", "hello", "--chmod-socket", "999", "--socket", "/tmp/x.sock"], "--chmod-socket 999"),
        (["--app", "hello", "--socket", "/nonexistent-dir/app.sock"], "directory /nonexistent-dir does not exist"),
        (["--app", "hello", "--processes", "many", "--http-socket", ":1"], "many"),
        (["--app", "hello", "--harakiri", "10000000000000000", "--http-socket", ":1"], "--harakiri 10000000000000000: at most"),
        (["--app", "hello", "--graceful-timeout", "99999999999", "--http-socket", ":1"], "--graceful-timeout 99999999999: at most"),
        (["--app", "hello", "--max-requests-jitter", "5", "--http-socket", ":1"], "--max-requests-jitter needs --max-requests"),
        (["--app", "hello", "--uid", "no-such-user-x", "--http-socket", ":1"], "--uid no-such-user-x: no such user"),
        (["--app", "hello", "--gid", "no-such-group-x", "--http-socket", ":1"], "--gid no-such-group-x: no such group"),
    ])
    func badFlagsAreExplained(arguments: [String], message: String) throws {
        let (code, output) = try Self.run(arguments)
        #expect(code != 0)
        #expect(output.contains(message), "output was: \(output)")
        #expect(!output.contains("Fatal error"))
    }

    @Test(.enabled(if: getuid() == 0, "the refusal is about running as root"))
    func workersAsRootNeedAnExplicitDecision() throws {
        let port = try Harness.freePort()
        let refused = try Self.run(viaEnv: ["-u", "KEEL_POOL_ALLOW_ROOT"], ["--app", "hello", "--http-socket", "127.0.0.1:\(port)"])
        #expect(refused.code != 0)
        #expect(refused.output.contains("refusing to run workers as root: give --uid USER"))
        let allowed = try Self.run(
            viaEnv: ["-u", "KEEL_POOL_ALLOW_ROOT"], ["check", "--app", "hello", "--allow-root", "--http-socket", "127.0.0.1:\(port)"])
        #expect(allowed.code == 0)
        let dropped = try Self.run(
            viaEnv: ["-u", "KEEL_POOL_ALLOW_ROOT"], ["check", "--app", "hello", "--uid", "nobody", "--http-socket", "127.0.0.1:\(port)"])
        #expect(dropped.code == 0)
    }

    /// Runs keel-pool through env(1), e.g. to remove a variable the harness sets.
    static func run(viaEnv envArguments: [String], _ arguments: [String]) throws -> (code: Int32, output: String) {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try ManagedProcess("/usr/bin/env", envArguments + [Harness.keelPoolPath] + arguments, logPath: directory + "/out")
        let code = try process.waitForExit(seconds: 20)
        return (code, process.log)
    }

    @Test func unwritableSocketDirectoryIsExplained() throws {
        // Run as an unprivileged user only when root (root can write anywhere).
        let (code, output) = try Self.run(["--app", "hello", "--socket", "/proc/app.sock"])
        #expect(code != 0)
        #expect(output.contains("/proc") && (output.contains("not writable") || output.contains("cannot bind")))
    }

    @Test func checkValidatesWithoutServing() throws {
        let port = try Harness.freePort()
        let ok = try Self.run(["check", "--app", "hello", "--http-socket", "127.0.0.1:\(port)", "--processes", "2"])
        #expect(ok.code == 0)
        #expect(ok.output.contains("OK"))
        #expect(throws: (any Error).self) { try TestSocket(tcpPort: port) }
        let bad = try Self.run(["check", "--app", "nope", "--http-socket", "127.0.0.1:\(port)"])
        #expect(bad.code != 0)
        #expect(bad.output.contains("--app nope"))
    }

    @Test func helpDocumentsEveryFlag() throws {
        let (code, output) = try Self.run(["--help"])
        #expect(code == 0)
        for flag in [
            "--socket", "--http-socket", "--chmod-socket", "--listen", "--processes", "--workers", "--threads", "--app",
            "--pidfile", "--graceful-timeout", "--limit-post", "--socket-timeout", "--master", "check",
        ] {
            #expect(output.contains(flag), "--help lacks \(flag)")
        }
    }
}
