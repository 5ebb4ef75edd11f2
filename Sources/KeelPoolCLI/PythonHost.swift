import ArgumentParser
import CKeelSys
import KeelPool
import KeelSystem

#if canImport(Glibc)
import Glibc
#endif

/// Which Python runs a WSGI app's workers, decided in the master before anything starts. A worker is the app's own
/// interpreter (`--python`, the `--virtualenv`'s, else Debian's /usr/bin/python3) running keel-pool's worker
/// runtime, `libKeelPoolWorker.so`, as an extension module, as granian does: any CPython 3.9 to 3.13, at that
/// interpreter's own speed. Without the library beside keel-pool, a 3.11 app falls back to the libpython3.11
/// keel-pool embeds.
public enum PythonHost: Equatable, Sendable {
    case hosted(interpreter: String, library: String)
    case embedded

    public static let oldest = (3, 9)
    public static let newest = (3, 13)
    static var supported: String { "CPython \(oldest.0).\(oldest.1) to \(newest.0).\(newest.1)" }
    public static let libraryName = "libKeelPoolWorker.so"

    /// What the interpreter runs: load the worker library from argv[1] and hand it the worker's arguments.
    public static let bootstrap = """
        # keel-pool worker
        import os, sys
        from importlib.machinery import ExtensionFileLoader
        from importlib.util import module_from_spec, spec_from_loader
        try:
            loader = ExtensionFileLoader('keel_pool_worker', sys.argv[1])
            worker = module_from_spec(spec_from_loader('keel_pool_worker', loader))
            loader.exec_module(worker)
        except BaseException as error:
            # One line for the master (it stops the pool rather than respawn workers that fail the same way).
            line = 'cannot load %s into %s: %s' % (sys.argv[1], sys.executable, error)
            print('keel-pool worker: ' + line, file=sys.stderr)
            if '--status-fd' in sys.argv:
                os.write(int(sys.argv[sys.argv.index('--status-fd') + 1]), ('fatal: ' + line.replace('\\n', ' ') + '\\n').encode())
            sys.exit(1)
        arguments = sys.argv[2:]
        sys.argv = ['keel-pool']
        worker.run(arguments)
        """

    /// For the master's start-up line.
    public var description: String {
        switch self {
        case .hosted(let interpreter, _): return interpreter
        case .embedded: return "the embedded libpython3.11 (no \(Self.libraryName) beside keel-pool)"
        }
    }

    /// The executable and the arguments before the pool's flags for a worker of this host. With `--uid`/`--gid`, a
    /// hosted worker starts as keel-pool's `_exec-as`, which drops privileges and then execs the interpreter: Python's
    /// start-up (site-packages, `.pth` files) never runs as root.
    public func workerCommand(poolArguments: [String], dropTo identity: (uid: uid_t?, gid: gid_t?)?)
        -> (executable: String?, arguments: [String])
    {
        switch self {
        case .hosted(let interpreter, let library):
            let command = [interpreter, "-u", "-c", Self.bootstrap, library] + poolArguments
            guard let identity else { return (interpreter, Array(command.dropFirst())) }
            let ids = (identity.uid.map { ["--to-uid", "\($0)"] } ?? []) + (identity.gid.map { ["--to-gid", "\($0)"] } ?? [])
            return (nil, ["_exec-as"] + ids + ["--"] + command)
        case .embedded:
            return (nil, ["_worker"] + poolArguments)
        }
    }

    /// Picks and checks the interpreter; every problem is one line naming the flag, the interpreter and its version.
    public static func resolve(python: String?, virtualenv: String?, besides executable: String) throws -> PythonHost {
        // No interpreter asked for and none installed (a slim image with only libpython3.11): the embedded one.
        guard let (interpreter, flag) = try choose(python: python, virtualenv: virtualenv) else { return .embedded }
        let version = try PythonVersion.probe(interpreter, flag: flag)
        let name = "\(version.implementation) \(version.text) (\(interpreter))"
        guard version.implementation == "CPython" else {
            throw ValidationError("\(flag): \(name) cannot host keel-pool's workers; give a \(supported)")
        }
        guard version.minor >= oldest, version.minor <= newest else {
            throw ValidationError("\(flag): \(name) is not supported; keel-pool hosts \(supported)")
        }
        guard !version.debugBuild else {
            throw ValidationError("\(flag): \(name) is a debug (Py_DEBUG) build; keel-pool hosts release builds of \(supported)")
        }
        guard !version.freeThreaded else {
            throw ValidationError("\(flag): \(name) is a free-threaded build; keel-pool hosts \(supported) with the GIL")
        }
        let directory = String(executable[..<(executable.lastIndex(of: "/") ?? executable.startIndex)])
        let library = directory + "/" + libraryName
        if access(library, R_OK) == 0 { return .hosted(interpreter: interpreter, library: library) }
        guard version.minor == (3, 11) else {
            throw ValidationError(
                "\(flag): \(name) needs keel-pool's worker library \(library) (build it: swift build --product "
                    + "KeelPoolWorker); without it only 3.11 runs, on the libpython3.11 keel-pool embeds")
        }
        return .embedded
    }

    /// The interpreter asked for, else the system's python3; nil when neither flag is given and none is installed.
    static func choose(python: String?, virtualenv: String?) throws -> (path: String, flag: String)? {
        if let python {
            guard virtualenv == nil else {
                throw ValidationError("--python and --virtualenv both choose the interpreter; give one of them")
            }
            guard access(python, X_OK) == 0 else { throw ValidationError("--python \(python): no such interpreter") }
            return (python, "--python \(python)")
        }
        if let virtualenv {
            let base = virtualenv.hasSuffix("/") ? String(virtualenv.dropLast()) : virtualenv
            for name in ["python3", "python"] where access(base + "/bin/" + name, X_OK) == 0 {
                return (base + "/bin/" + name, "--virtualenv \(virtualenv)")
            }
            throw ValidationError("--virtualenv \(virtualenv): no bin/python3 in it; make it with python3 -m venv DIR")
        }
        if access("/usr/bin/python3", X_OK) == 0 { return ("/usr/bin/python3", "the default interpreter") }
        let path = getenv("PATH").map { String(cString: $0) } ?? ""
        for directory in path.split(separator: ":") where access("\(directory)/python3", X_OK) == 0 {
            return ("\(directory)/python3", "the default interpreter")
        }
        return nil
    }
}

/// An interpreter's answer to "what are you": asked by running it, since the master runs no Python itself.
struct PythonVersion {
    var implementation: String
    var text: String
    var minor: (Int, Int)
    var freeThreaded: Bool
    /// A `Py_DEBUG` build: its objects carry two more pointers, so the library's struct offsets do not hold.
    var debugBuild: Bool

    static let question = """
        import sys, sysconfig
        name = {'cpython': 'CPython', 'pypy': 'PyPy'}.get(sys.implementation.name, sys.implementation.name)
        print(name, '%d.%d.%d' % sys.version_info[:3], int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))),
              int(hasattr(sys, 'gettotalrefcount')))
        """

    static func probe(_ interpreter: String, flag: String) throws -> PythonVersion {
        // -I -S: no site-packages, .pth files or PYTHON* variables: the master (root, maybe) runs no code of the app's.
        let (status, output) = try run(interpreter, ["-I", "-S", "-c", question], flag: flag)
        let words = output.split(separator: "\n").last?.split(separator: " ") ?? []
        guard status == 0, words.count == 4 else {
            // The line that says what went wrong: an error's, an "Unknown option" (Python 2), else the last one.
            let lines = output.split(separator: "\n")
            let telling = lines.first { $0.contains("Error") || $0.contains("Unknown option") } ?? lines.last
            let said = telling.map { ": \($0)" } ?? ""
            throw ValidationError("\(flag): \(interpreter) did not answer like a Python 3 interpreter\(said)")
        }
        let numbers = words[1].split(separator: ".").compactMap { Int($0) }
        guard numbers.count == 3 else { throw ValidationError("\(flag): \(interpreter) gave the version \(words[1])") }
        return PythonVersion(
            implementation: String(words[0]), text: String(words[1]), minor: (numbers[0], numbers[1]),
            freeThreaded: words[2] == "1", debugBuild: words[3] == "1")
    }

    /// Runs the interpreter with stdout and stderr on one pipe, for at most 10 seconds; its raw wait status (0: it
    /// exited with 0) and what it printed.
    static func run(_ executable: String, _ arguments: [String], flag: String) throws -> (Int32, String) {
        var fds: [Int32] = [-1, -1]
        guard keel_pipe2(&fds, O_CLOEXEC) == 0 else { throw ValidationError("\(flag): cannot make a pipe") }
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(
                executable, arguments: arguments, moving: [(fds[1], 1), (fds[1], 2)], closeFrom: 3, defaultSignals: [])
        } catch {
            close(fds[0])
            close(fds[1])
            throw ValidationError("\(flag): cannot run \(executable): \(error)")
        }
        close(fds[1])
        defer { close(fds[0]) }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = monotonicMilliseconds() + 10_000
        var ended = false
        while !ended && monotonicMilliseconds() < deadline {
            var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 100) <= 0 { continue }
            let count = read(fds[0], &buffer, buffer.count)
            if count > 0 { output += buffer[..<count] } else if count == 0 || errno != EINTR { ended = true }
        }
        var status: Int32 = 0
        if !ended { kill(pid, SIGKILL) }
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard ended else { throw ValidationError("\(flag): \(executable) did not say its version within 10 s") }
        return (status, String(decoding: output, as: UTF8.self))
    }
}
