import KeelApp

#if canImport(Glibc)
import Glibc
#endif

/// What to load and how: the WSGI flags of keel-pool (`--wsgi`, `--wsgi-file`, `--chdir`, `--pythonpath`,
/// `--virtualenv`, `--env`), validated in the master, used in each worker.
public struct WSGIConfiguration: Sendable {
    public enum Source: Sendable, Equatable {
        /// `--wsgi MODULE[:CALLABLE]` (uWSGI's `--module`).
        case module(String)
        /// `--wsgi-file FILE`.
        case file(String)
    }

    /// How the app is called: WSGI on the worker's threads, ASGI on an asyncio loop, or WSGI in gevent's greenlets.
    public enum Interface: Sendable, Equatable {
        case wsgi
        /// `--asgi`, with `--loop auto|asyncio|uvloop`.
        case asgi(loop: String)
        /// `--gevent N`; `patch` false with `--gevent-no-patch`.
        case gevent(patch: Bool)
    }

    public var source: Source
    public var interface: Interface = .wsgi
    /// The WSGI callable's name in the module (`application`, as uWSGI defaults).
    public var callable: String
    public var chdir: String?
    public var pythonPath: [String]
    public var virtualenv: String?
    /// `--env K=V`, set before the interpreter starts.
    public var environment: [(name: String, value: String)]
    /// `wsgi.multithread`: more than one thread per worker.
    public var multithread: Bool
    /// `wsgi.multiprocess`: more than one worker.
    public var multiprocess: Bool
    /// Where `wsgi.errors` and app tracebacks go (the pool's log), one record per call.
    public var log: @Sendable (String) -> Void
    /// --py-autoreload: seconds between looks at the loaded modules' files (0 = off).
    public var autoreloadSeconds = 0
    /// Where a changed file is reported ("PATH MTIME_NS SIZE"): the worker's status pipe to the master.
    public var autoreloadReport: (@Sendable (String) -> Void)?

    public init(
        source: Source, callable: String = "application", chdir: String? = nil, pythonPath: [String] = [],
        virtualenv: String? = nil, environment: [(name: String, value: String)] = [], multithread: Bool = false,
        multiprocess: Bool = false, log: @escaping @Sendable (String) -> Void
    ) {
        self.source = source
        self.callable = callable
        self.chdir = chdir
        self.pythonPath = pythonPath
        self.virtualenv = virtualenv
        self.environment = environment
        self.multithread = multithread
        self.multiprocess = multiprocess
        self.log = log
    }

    /// The flag that named the app, for messages.
    var flag: String {
        switch source {
        case .module(let name): return interface.isASGI ? "--asgi \(name)" : "--wsgi \(name)"
        case .file(let path): return "--wsgi-file \(path)"
        }
    }

    /// Checks what can be checked without Python (the master runs no app code); the import itself
    /// happens in each worker. Throws a one-line message naming the flag to fix.
    public func validate() throws(AppLoadError) {
        if let chdir, !Self.isDirectory(chdir) { throw AppLoadError("--chdir \(chdir): no such directory") }
        let base = chdir.map { $0.hasSuffix("/") ? $0 : $0 + "/" } ?? ""
        switch source {
        case .module(let name):
            guard !name.isEmpty, name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(Self.isIdentifier)
            else {
                throw AppLoadError(
                    interface.isASGI
                        ? "--asgi \(name): give a Python module and app such as main:app or myproject.asgi:application"
                        : "--wsgi \(name): give a Python module name such as myapp or myproject.wsgi")
            }
        case .file(let path):
            let resolved = path.hasPrefix("/") ? path : base + path
            guard access(resolved, R_OK) == 0, !Self.isDirectory(resolved) else {
                throw AppLoadError("--wsgi-file \(path): no such file" + (chdir == nil ? "" : " (relative to --chdir)"))
            }
        }
        guard Self.isIdentifier(Substring(callable)) else {
            throw AppLoadError("\(flag): callable name '\(callable)' is not a Python identifier")
        }
        for entry in pythonPath where !Self.isDirectory(entry.hasPrefix("/") ? entry : base + entry) {
            throw AppLoadError("--pythonpath \(entry): no such directory")
        }
        if let virtualenv {
            guard Self.isDirectory(virtualenv) else { throw AppLoadError("--virtualenv \(virtualenv): no such directory") }
            guard access(virtualenv + "/pyvenv.cfg", R_OK) == 0 else {
                throw AppLoadError(
                    "--virtualenv \(virtualenv): not a virtualenv (no pyvenv.cfg); make one with python3 -m venv DIR")
            }
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func isIdentifier(_ name: Substring) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first.properties.isXIDStart else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isXIDContinue }
    }
}

extension WSGIConfiguration.Interface {
    var isASGI: Bool {
        if case .asgi = self { return true }
        return false
    }
}
