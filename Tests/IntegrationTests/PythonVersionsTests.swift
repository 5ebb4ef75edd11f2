import Foundation
import Testing

/// One keel-pool build hosts CPython 3.9 to 3.13 (issue 15): each worker is the app's own interpreter running the
/// worker library. The WSGI suite's core cases run on each version this machine has (pyenv's builds); a version
/// that is missing is skipped with a message saying so.
@Suite("Python versions", .timeLimit(.minutes(3)))
struct PythonVersionsTests {
    /// The interpreter of the newest installed 3.MINOR under pyenv's root (a free-threaded "t" build is not one).
    static func interpreter(minor: Int) -> String? {
        let root = ProcessInfo.processInfo.environment["PYENV_ROOT"] ?? NSHomeDirectory() + "/.pyenv"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root + "/versions")) ?? []
        let matching = versions.filter { $0.hasPrefix("3.\(minor).") && $0.allSatisfy { $0.isNumber || $0 == "." } }
        let newest = matching.max { $0.split(separator: ".").compactMap { Int($0) }.lexicographicallyPrecedes($1.split(separator: ".").compactMap { Int($0) }) }
        return newest.map { root + "/versions/" + $0 + "/bin/python3" }.flatMap {
            FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
        }
    }

    static func missing(_ minor: Int) -> String { "CPython 3.\(minor) is not installed here (looked under pyenv's root)" }

    /// hello under wsgiref's validator, the environ, a POSTed body read back, a streamed generator, write().
    static func coreCases(minor: Int, _ arguments: [String]) throws {
        let wsgi = try WSGIPool(
            "by_path", ["--processes", "1", "--threads", "2", "--env", "KEEL_TEST_ENV=set by --env"] + arguments)
        let hello = try HTTPClient.get(port: wsgi.port, "/hello")
        #expect(hello.status == 200)
        #expect(hello.text == "Hello world!\n")
        let reply = try HTTPClient.get(port: wsgi.port, "/environ_app/x?q=1")
        let environ = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
        #expect(environ["python_version"] as? String == "3.\(minor)", "the app runs on the interpreter asked for")
        #expect(environ["QUERY_STRING"] as? String == "q=1")
        #expect(environ["os.environ KEEL_TEST_ENV"] as? String == "set by --env", "--env reaches os.environ")
        #expect(environ["wsgi.multithread"] as? Bool == true)
        let body = Array("line one\nline two\n".utf8)
        let echoed = try HTTPClient.request(port: wsgi.port, method: "POST", "/echo_read", body: body)
        #expect(echoed.body == body)
        let lines = try HTTPClient.request(port: wsgi.port, method: "POST", "/echo_lines", body: body)
        #expect(lines.body == body)
        #expect(try HTTPClient.get(port: wsgi.port, "/stream").text == (0..<5).map { "chunk \($0)\n" }.joined())
        #expect(try HTTPClient.get(port: wsgi.port, "/write_callable").text == "written, then returned\n")
        #expect(try HTTPClient.get(port: wsgi.port, "/raise_before").status == 500)
        #expect(!wsgi.log.contains("AssertionError"), "wsgiref.validate found no violation")
        try wsgi.pool.stop()
    }

    @Test(.enabled(if: interpreter(minor: 9) != nil, "\(missing(9))")) func python3_9() throws {
        try Self.coreCases(minor: 9, ["--python", Self.interpreter(minor: 9)!])
    }

    @Test(.enabled(if: interpreter(minor: 10) != nil, "\(missing(10))")) func python3_10() throws {
        try Self.coreCases(minor: 10, ["--python", Self.interpreter(minor: 10)!])
    }

    @Test func debiansPython3_11() throws {
        try Self.coreCases(minor: 11, ["--python", "/usr/bin/python3"])
    }

    @Test(.enabled(if: interpreter(minor: 12) != nil, "\(missing(12))")) func python3_12() throws {
        try Self.coreCases(minor: 12, ["--python", Self.interpreter(minor: 12)!])
    }

    @Test(.enabled(if: interpreter(minor: 13) != nil, "\(missing(13))")) func python3_13() throws {
        try Self.coreCases(minor: 13, ["--python", Self.interpreter(minor: 13)!])
    }

    /// A venv made by another version: its interpreter runs the app, with the venv as sys.prefix.
    @Test(.enabled(if: interpreter(minor: 13) != nil, "\(missing(13))")) func aVenvOfAnotherVersion() throws {
        let venv = try Harness.makeTempDirectory() + "/venv"
        defer { try? FileManager.default.removeItem(atPath: (venv as NSString).deletingLastPathComponent) }
        let made = try ManagedProcess(Self.interpreter(minor: 13)!, ["-m", "venv", "--without-pip", venv], logPath: venv + ".log")
        #expect(try made.waitForExit(seconds: 60) == 0)
        let wsgi = try WSGIPool("environ_app", ["--virtualenv", venv])
        let environ = try #require(
            try JSONSerialization.jsonObject(with: Data(HTTPClient.get(port: wsgi.port, "/").body)) as? [String: Any])
        #expect(environ["python_version"] as? String == "3.13")
        #expect(environ["sys.prefix"] as? String == venv)
        try wsgi.pool.stop()
    }

    /// With --uid/--gid the interpreter starts as that user (keel-pool's `_exec-as` drops before the exec), so
    /// Python's start-up and the app's import never run as root.
    @Test(.enabled(if: getuid() == 0, "dropping privileges needs root"))
    func aHostedWorkerStartsAsTheGivenUser() throws {
        // A .pth file in the venv runs during Python's own start-up and records who that was.
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o755)
        let venv = directory + "/venv"
        let made = try ManagedProcess("/usr/bin/python3", ["-m", "venv", "--without-pip", venv], logPath: directory + "/venv.log")
        #expect(try made.waitForExit(seconds: 60) == 0)
        let sitePackages = venv + "/lib/python3.11/site-packages"
        // Each interpreter start leaves a marker named by its uid: the master's version probe must start none.
        let markers = directory + "/markers"
        try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: false)
        chmod(markers, 0o777)
        try ("import os; os.environ['KEEL_TEST_STARTED_AS'] = str(os.getuid()); "
            + "open('\(markers)/started-as-%d' % os.getuid(), 'w').close()\n")
            .write(toFile: sitePackages + "/keel_probe.pth", atomically: true, encoding: .utf8)
        let wsgi = try WSGIPool("whoami", ["--uid", "nobody", "--gid", "nogroup", "--virtualenv", venv], readableByAll: true)
        let seen = try #require(
            try JSONSerialization.jsonObject(with: Data(HTTPClient.get(port: wsgi.port, "/").body)) as? [String: Any])
        #expect(seen["started_as"] as? String == "65534", "Python's start-up ran as nobody, not root")
        #expect(seen["imported_as"] as? [Int] == [65534, 65534, 65534])
        #expect(seen["runs_as"] as? [Int] == [65534, 65534, 65534])
        let started = try FileManager.default.contentsOfDirectory(atPath: markers)
        #expect(started == ["started-as-65534"], "no interpreter ran the venv's site-packages as root: \(started)")
        let worker = try #require(wsgi.pool.workers.first)
        let status = try String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)
        #expect(status.contains("Uid:\t65534\t65534\t65534\t65534"))
        #expect(status.contains("Name:\tpython3"), "the worker is the interpreter itself")
        try wsgi.pool.stop()
    }

    /// keel-pool without its worker library beside it (what `swift run` builds) embeds libpython3.11: 3.11 apps
    /// still run, in keel-pool's own worker process, and another version is refused with the command that builds it.
    @Test func withoutTheWorkerLibraryKeelPoolEmbedsPython3_11() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let alone = directory + "/keel-pool"
        try FileManager.default.copyItem(atPath: Harness.keelPoolPath, toPath: alone)
        let apps = try WSGITestApps.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: apps) }
        let port = try Harness.freePort()
        let process = try ManagedProcess(
            alone, ["--http-socket", "127.0.0.1:\(port)", "--wsgi", "\(WSGITestApps.module):by_path", "--pythonpath", apps],
            logPath: directory + "/pool.log")
        try Harness.waitUntil("the embedded worker", seconds: 20) { (try? HTTPClient.get(port: port, "/hello").status) == 200 }
        let reply = try HTTPClient.get(port: port, "/environ_app/")
        let environ = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
        #expect(environ["python_version"] as? String == "3.11")
        #expect(process.log.contains("Python: the embedded libpython3.11 (no libKeelPoolWorker.so beside keel-pool)"))
        let worker = try #require(Harness.children(of: process.pid).first)
        let status = try String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)
        #expect(status.contains("Name:\tkeel-pool"), "the worker is keel-pool's own process")
        _ = try process.stop(signal: SIGTERM)
        if let python = Self.interpreter(minor: 12) {
            let refused = try ManagedProcess(
                alone, ["--http-socket", "127.0.0.1:1", "--wsgi", "app", "--python", python], logPath: directory + "/refused.log")
            #expect(try refused.waitForExit(seconds: 20) != 0)
            #expect(refused.log.contains("needs keel-pool's worker library \(directory)/libKeelPoolWorker.so"), "\(refused.log)")
            #expect(refused.log.contains("swift build --product KeelPoolWorker"))
        }
    }

    /// A worker library the interpreter cannot load stops the pool with one line, not a respawn loop.
    @Test func anUnloadableWorkerLibraryStopsThePoolWithOneLine() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: Harness.keelPoolPath, toPath: directory + "/keel-pool")
        try "not a library\n".write(toFile: directory + "/libKeelPoolWorker.so", atomically: true, encoding: .utf8)
        let apps = try WSGITestApps.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: apps) }
        let process = try ManagedProcess(
            directory + "/keel-pool",
            ["--http-socket", "127.0.0.1:\(try Harness.freePort())", "--wsgi", "\(WSGITestApps.module):hello", "--pythonpath", apps],
            logPath: directory + "/pool.log")
        #expect(try process.waitForExit(seconds: 20) == 1)
        #expect(process.log.contains(
            "the app cannot be loaded, stopping (fix it and start again): cannot load \(directory)/libKeelPoolWorker.so into"))
        #expect(!process.log.contains("respawning"))
    }

    @Test(.enabled(if: interpreter(minor: 8) != nil, "\(missing(8))")) func anUnsupportedVersionIsOneLine() throws {
        let python = Self.interpreter(minor: 8)!
        let (code, output) = try CLITests.run(["--wsgi", "app", "--python", python, "--http-socket", "127.0.0.1:1"])
        #expect(code != 0)
        #expect(output.contains("--python \(python): CPython 3.8."), "output was: \(output)")
        #expect(output.contains("is not supported; keel-pool hosts CPython 3.9 to 3.13"), "output was: \(output)")
    }

    @Test func interpreterProblemsAreOneLine() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "#!/bin/sh\necho not python\n".write(toFile: directory + "/fake", atomically: true, encoding: .utf8)
        chmod(directory + "/fake", 0o755)
        try "home = /usr/bin\n".write(toFile: directory + "/pyvenv.cfg", atomically: true, encoding: .utf8)
        // Interpreters that answer the master's question as builds keel-pool cannot host would.
        for (name, answer) in [("debug", "CPython 3.11.2 0 1"), ("freethreaded", "CPython 3.13.0 1 0"), ("pypy", "PyPy 3.10.14 0 0")] {
            try "#!/bin/sh\necho \(answer)\n".write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
            chmod(directory + "/" + name, 0o755)
        }
        for (arguments, message) in [
            (["--python", "/nonexistent/python3"], "--python /nonexistent/python3: no such interpreter"),
            (["--python", directory + "/fake"], "--python \(directory)/fake: \(directory)/fake did not answer like a Python 3 interpreter: not python"),
            (["--python", "/usr/bin/python3", "--virtualenv", directory], "--python and --virtualenv both choose the interpreter"),
            (["--python", directory + "/debug"], "CPython 3.11.2 (\(directory)/debug) is a debug (Py_DEBUG) build; keel-pool hosts release builds of CPython 3.9 to 3.13"),
            (["--python", directory + "/freethreaded"], "is a free-threaded build; keel-pool hosts CPython 3.9 to 3.13 with the GIL"),
            (["--python", directory + "/pypy"], "PyPy 3.10.14 (\(directory)/pypy) cannot host keel-pool's workers; give a CPython 3.9 to 3.13"),
        ] {
            let (code, output) = try CLITests.run(["--wsgi", "app", "--http-socket", "127.0.0.1:1"] + arguments)
            #expect(code != 0)
            #expect(output.contains(message), "output was: \(output)")
        }
    }
}
