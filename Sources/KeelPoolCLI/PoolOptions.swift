import ArgumentParser
import KeelApp
import KeelPool
import KeelSystem
import KeelWSGI

#if canImport(Glibc)
import Glibc
#endif

/// The pool's flags, named as uWSGI names them (gunicorn's names where uWSGI has none).
public struct PoolOptions: ParsableArguments {
    public init() {}

    @Option(
        name: [.customLong("socket"), .customShort("s")],
        help: ArgumentHelp(
            "uwsgi-protocol socket: a unix path (/run/app.sock) or HOST:PORT (':3031' = all interfaces). Repeatable.",
            valueName: "PATH|HOST:PORT"))
    var socket: [String] = []

    @Option(
        name: .customLong("http-socket"),
        help: ArgumentHelp("HTTP/1.1 socket (keep-alive, pipelining), HOST:PORT or a unix path. Repeatable.",
            valueName: "HOST:PORT"))
    var httpSocket: [String] = []

    @Option(
        name: .customLong("chmod-socket"),
        help: ArgumentHelp("Permissions of unix socket files, octal (e.g. 660, 666).", valueName: "MODE"))
    var chmodSocket: String?

    @Option(
        name: [.customLong("listen"), .customShort("l")],
        help: ArgumentHelp("Listen queue (backlog) of each socket; capped by net.core.somaxconn.", valueName: "N"))
    var listen: Int = 1024

    @Option(
        name: [.customLong("processes"), .customShort("p"), .customLong("workers"), .customShort("w")],
        help: ArgumentHelp("Worker processes (alias --workers).", valueName: "N"))
    var processes: Int = 1

    @Option(
        name: .customLong("threads"),
        help: ArgumentHelp(
            "Threads per worker: at most N requests run at once in a worker, which stops accepting while all are busy. "
                + "With 1 the app runs on the worker's I/O thread.", valueName: "N"))
    var threadsOption: Int?

    @Option(
        name: .customLong("asgi"),
        help: ArgumentHelp(
            "ASGI 3 app to serve (FastAPI, Starlette, Django's asgi): a module and its app (APP defaults to app).",
            valueName: "MODULE[:APP]"))
    var asgi: String?

    @Option(
        name: .customLong("loop"),
        help: ArgumentHelp("The ASGI app's event loop: auto (uvloop when importable), asyncio or uvloop.", valueName: "KIND"))
    var loop: String?

    @Option(
        name: .customLong("gevent"),
        help: ArgumentHelp(
            "Run the WSGI app in gevent greenlets, at most N requests per worker (gunicorn: -k gevent "
                + "--worker-connections N).", valueName: "N"))
    var gevent: Int?

    @Flag(name: .customLong("gevent-no-patch"), help: "With --gevent: do not call gevent.monkey.patch_all() first.")
    var geventNoPatch = false

    @Option(
        name: .customLong("worker-connections"),
        help: ArgumentHelp(
            "Requests in flight per worker for --asgi apps (default 1000); a full worker stops accepting.",
            valueName: "N"))
    var workerConnections: Int?

    @Option(
        name: [.customLong("ws-max-size"), .customLong("websocket-max-size")],
        help: ArgumentHelp(
            "Largest WebSocket message (and frame) an --asgi app accepts, in bytes; larger ones close with 1009 "
                + "(default 16777216, uvicorn's).", valueName: "BYTES"))
    var wsMaxSize: Int?

    /// Requests in flight per worker for an app with a loop of its own (nil: a WSGI app on threads).
    var asyncConnections: Int? {
        if let gevent { return gevent }
        return asgi != nil ? (workerConnections ?? 1000) : nil
    }

    /// What bounds a worker's requests: its threads, or for async apps --worker-connections / --gevent N.
    var threads: Int { asyncConnections ?? threadsOption ?? 1 }

    @Option(
        name: .customLong("app"),
        help: ArgumentHelp(
            "Built-in app to serve: \(BuiltinApps.all.map { "\($0.name) (\($0.summary))" }.joined(separator: ", ")).",
            valueName: "NAME"))
    var app: String?

    @Option(
        name: [.customLong("wsgi"), .customLong("module")],
        help: ArgumentHelp(
            "WSGI app to serve: a module and its callable (alias --module; CALLABLE defaults to application).",
            valueName: "MODULE[:CALLABLE]"))
    var wsgi: String?

    @Option(
        name: .customLong("wsgi-file"),
        help: ArgumentHelp("WSGI app to serve from a Python file (its `application`, or --callable).", valueName: "FILE"))
    var wsgiFile: String?

    @Option(name: .customLong("callable"), help: ArgumentHelp("Name of the WSGI callable (default application).", valueName: "NAME"))
    var callable: String?

    @Option(name: .customLong("chdir"), help: ArgumentHelp("Directory workers change to before loading the app.", valueName: "DIR"))
    var chdir: String?

    @Option(
        name: [.customLong("pythonpath"), .customLong("python-path"), .customLong("pp")],
        help: ArgumentHelp("Directory added to sys.path before the app is imported. Repeatable.", valueName: "DIR"))
    var pythonPath: [String] = []

    @Option(
        name: [.customLong("virtualenv"), .customShort("H"), .customLong("venv"), .customLong("home")],
        help: ArgumentHelp("Virtualenv whose interpreter (CPython 3.9 to 3.13) and packages run the app.", valueName: "DIR"))
    var virtualenv: String?

    @Option(
        name: .customLong("python"),
        help: ArgumentHelp(
            "Interpreter that runs the WSGI app (CPython 3.9 to 3.13; default: the --virtualenv's, else /usr/bin/python3).",
            valueName: "PATH"))
    var python: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("Environment variable for the app. Repeatable.", valueName: "KEY=VALUE"))
    var env: [String] = []

    @Flag(name: .customLong("enable-threads"), help: "Accepted for uWSGI compatibility: app threads always run.")
    var enableThreads = false

    @Option(name: .customLong("pidfile"), help: ArgumentHelp("Write the master's pid to FILE.", valueName: "FILE"))
    var pidfile: String?

    @Option(
        name: .customLong("graceful-timeout"),
        help: ArgumentHelp("On TERM, seconds in-flight requests get before workers are killed.", valueName: "SECONDS"))
    var gracefulTimeout: Int = 30

    @Option(
        name: .customLong("limit-post"),
        help: ArgumentHelp("Largest request body in bytes (413 above it); 0 = no limit.", valueName: "BYTES"))
    var limitPost: Int = 1 << 30

    @Option(
        name: .customLong("socket-timeout"),
        help: ArgumentHelp(
            "Seconds a connection may stay silent while its request is expected (also the keep-alive idle time).",
            valueName: "SECONDS"))
    var socketTimeout: Int = 4

    @Option(
        name: .customLong("max-requests"),
        help: ArgumentHelp(
            "Recycle a worker after it has answered N requests (0 = never): its successor starts before it leaves.",
            valueName: "N"))
    var maxRequests: Int = 0

    @Option(
        name: .customLong("max-requests-jitter"),
        help: ArgumentHelp(
            "Add a random 0…J to each worker's --max-requests, so workers do not all recycle at once.", valueName: "J"))
    var maxRequestsJitter: Int = 0

    @Option(
        name: .customLong("max-worker-lifetime"),
        help: ArgumentHelp("Recycle a worker after it has lived this long (0 = never).", valueName: "SECONDS"))
    var maxWorkerLifetime: Int = 0

    @Option(
        name: .customLong("reload-on-rss"),
        help: ArgumentHelp("Recycle a worker whose resident memory exceeds MB (0 = never).", valueName: "MB"))
    var reloadOnRSS: Int = 0

    @Option(
        name: .customLong("harakiri"),
        help: ArgumentHelp(
            "Kill (and replace) a worker whose request runs longer than this; the request line is logged (0 = off).",
            valueName: "SECONDS"))
    var harakiri: Int = 0

    @Option(
        name: .customLong("py-autoreload"),
        help: ArgumentHelp(
            "Development: every N seconds, check the loaded Python modules' files; a change reloads the workers as HUP "
                + "does (0 = off).", valueName: "SECONDS"))
    var pyAutoreload: Int = 0

    @Flag(name: .customLong("reload"), help: "gunicorn's name for --py-autoreload 1.")
    var reload = false

    /// --py-autoreload's interval, with gunicorn's --reload as 1 second.
    var autoreloadSeconds: Int { pyAutoreload > 0 ? pyAutoreload : (reload ? 1 : 0) }

    @Option(
        name: .customLong("stats"),
        help: ArgumentHelp(
            "Serve one JSON document of the pool's state per connection here (read it with `keel-pool stats ADDR`).",
            valueName: "PATH|HOST:PORT"))
    var stats: String?

    @Option(
        name: .customLong("metrics"),
        help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics from the master.", valueName: "HOST:PORT"))
    var metrics: String?

    @OptionGroup(title: "Adaptive workers (uWSGI's cheaper)") var cheaper: CheaperOptions

    @Option(
        name: .customLong("chown-socket"),
        help: ArgumentHelp("Owner of unix socket files: USER or USER:GROUP (names or numbers).", valueName: "USER[:GROUP]"))
    var chownSocket: String?

    @Option(
        name: .customLong("uid"),
        help: ArgumentHelp("Run workers as this user (name or number); the master binds the sockets first.",
            valueName: "USER"))
    var uid: String?

    @Option(
        name: .customLong("gid"),
        help: ArgumentHelp("Run workers with this group (name or number).", valueName: "GROUP"))
    var gid: String?

    @Flag(
        name: .customLong("allow-root"),
        help: "Let workers run as root when the master is root and no --uid is given (also KEEL_POOL_ALLOW_ROOT=1).")
    var allowRoot = false

    @Option(
        name: .customLong("logto"),
        help: ArgumentHelp("Append the master's and workers' logs to FILE (USR1 reopens it, for logrotate).",
            valueName: "FILE"))
    var logTo: String?

    @Flag(name: .customLong("master"), help: "Accepted for uWSGI compatibility: keel-pool always runs a master.")
    var master = false

    @Flag(name: .customLong("die-on-term"), help: "Accepted for uWSGI compatibility: TERM always shuts down gracefully.")
    var dieOnTerm = false

    /// This worker's --max-requests with its own random jitter (gunicorn's semantics).
    var jitteredMaxRequests: Int {
        maxRequests == 0 ? 0 : maxRequests + (maxRequestsJitter > 0 ? Int.random(in: 0...maxRequestsJitter) : 0)
    }

    /// Checks every value and names the flag to fix; nothing is bound here. `arguments` are the pool's own flags,
    /// which every worker is given again.
    public func validated(arguments: [String], inherited: [InheritedSocket] = []) throws -> PoolConfiguration {
        guard (1...1024).contains(processes) else {
            throw ValidationError("--processes \(processes): give a number of workers from 1 to 1024")
        }
        try checkAsyncFlags()
        if let threadsOption, !(1...1024).contains(threadsOption) {
            throw ValidationError("--threads \(threadsOption): give a number of threads per worker from 1 to 1024")
        }
        guard listen >= 1 else { throw ValidationError("--listen \(listen): the backlog must be at least 1") }
        guard gracefulTimeout >= 0 else { throw ValidationError("--graceful-timeout must be 0 or more seconds") }
        guard limitPost >= 0 else { throw ValidationError("--limit-post must be 0 (no limit) or a number of bytes") }
        guard socketTimeout >= 1 else { throw ValidationError("--socket-timeout must be at least 1 second") }
        for (flag, value) in [
            ("--max-requests", maxRequests), ("--max-requests-jitter", maxRequestsJitter),
            ("--max-worker-lifetime", maxWorkerLifetime), ("--reload-on-rss", reloadOnRSS), ("--harakiri", harakiri),
            ("--py-autoreload", pyAutoreload),
        ] where value < 0 {
            throw ValidationError("\(flag) \(value): give 0 (off) or a positive number")
        }
        // Bounds that keep the master's millisecond arithmetic far from overflow: ten years, a trillion requests.
        let tenYears = 315_360_000
        for (flag, value) in [
            ("--harakiri", harakiri), ("--max-worker-lifetime", maxWorkerLifetime),
            ("--graceful-timeout", gracefulTimeout), ("--socket-timeout", socketTimeout),
            ("--py-autoreload", pyAutoreload),
        ] where value > tenYears {
            throw ValidationError("\(flag) \(value): at most \(tenYears) seconds (ten years)")
        }
        for (flag, value) in [("--max-requests", maxRequests), ("--max-requests-jitter", maxRequestsJitter)]
        where value > 1_000_000_000_000 {
            throw ValidationError("\(flag) \(value): at most 1000000000000")
        }
        guard reloadOnRSS <= 1 << 30 else { throw ValidationError("--reload-on-rss \(reloadOnRSS): at most \(1 << 30) MB") }
        if maxRequestsJitter > 0 && maxRequests == 0 {
            throw ValidationError("--max-requests-jitter needs --max-requests: the jitter is added to it")
        }
        _ = try handler()
        let wsgi = try wsgiConfiguration()
        if let wsgi {
            do { try wsgi.validate() } catch { throw ValidationError(error.description) }
        }
        // Workers run the app: as root, that takes a decision (--uid to drop, or --allow-root to keep it).
        if geteuid() == 0 && uid == nil && !allowRoot && getenv("KEEL_POOL_ALLOW_ROOT").map({ String(cString: $0) }) != "1" {
            throw ValidationError(
                "refusing to run workers as root: give --uid USER (and --gid GROUP) for them, "
                    + "or --allow-root to run them as root anyway")
        }
        _ = try identity()
        var mode: mode_t?
        if let chmodSocket {
            guard let value = mode_t(chmodSocket, radix: 8), value <= 0o777 else {
                throw ValidationError("--chmod-socket \(chmodSocket): give octal permissions such as 660 or 666")
            }
            mode = value
        }
        if socket.isEmpty && httpSocket.isEmpty && inherited.isEmpty {
            throw ValidationError(
                "no socket to serve on: give --socket PATH|HOST:PORT (uwsgi, for nginx/keel) or --http-socket HOST:PORT")
        }
        do {
            var uwsgi = try socket.map { try ListenAddress.parse($0, flag: "--socket") }
            var http = try httpSocket.map { try ListenAddress.parse($0, flag: "--http-socket") }
            let inheritedFDs: [Int32?]
            if uwsgi.isEmpty && http.isEmpty {
                // None configured: systemd's sockets serve uwsgi, as uWSGI's do, or HTTP when the unit names one "http".
                let (httpOnes, uwsgiOnes) = (inherited.filter { $0.name == "http" }, inherited.filter { $0.name != "http" })
                uwsgi = uwsgiOnes.map { ListenAddress(inherited: $0.address) }
                http = httpOnes.map { ListenAddress(inherited: $0.address) }
                inheritedFDs = (uwsgiOnes + httpOnes).map(\.fd)
            } else {
                let wanted = (uwsgi + http).map { SocketActivation.Wanted(name: nil, address: $0.activationAddress) }
                do {
                    inheritedFDs = try SocketActivation.match(wanted, inherited).map { $0?.fd }
                } catch {
                    throw ValidationError(error.description)
                }
            }
            let all = uwsgi + http
            if Set(all.map(\.description)).count != all.count {
                throw ValidationError("the same address is given twice; each socket needs its own address")
            }
            var configuration = PoolConfiguration(
                uwsgiSockets: uwsgi, httpSockets: http, backlog: listen, chmodSocket: mode, processes: processes,
                threads: threads, appName: appName, pidfile: pidfile, gracefulTimeout: gracefulTimeout,
                workerArguments: ["_worker"] + arguments)
            configuration.inheritedFDs = inheritedFDs
            if wsgi != nil {
                let host = try PythonHost.resolve(python: python, virtualenv: virtualenv, besides: currentExecutablePath())
                (configuration.workerExecutable, configuration.workerArguments) = host.workerCommand(
                    poolArguments: arguments, dropTo: try identity())
                configuration.pythonHost = host.description
            }
            configuration.isAsync = asyncConnections != nil
            configuration.maxWorkerLifetime = maxWorkerLifetime
            configuration.harakiri = harakiri
            configuration.logTo = logTo
            if let chownSocket {
                let parts = chownSocket.split(separator: ":", maxSplits: 1).map(String.init)
                guard let user = parts.first, !user.isEmpty else {
                    throw ValidationError("--chown-socket \(chownSocket): give USER or USER:GROUP")
                }
                configuration.chownSocket = (
                    try Privileges.userID(user), try parts.count > 1 ? Privileges.groupID(parts[1]) : nil
                )
            }
            configuration.stats = try stats.map { try ListenAddress.parse($0, flag: "--stats") }
            if let stats = configuration.stats, all.contains(stats) {
                throw ValidationError("--stats \(stats) is also a serving socket; give the stats server its own address")
            }
            configuration.reloadOnRSS = reloadOnRSS
            configuration.metrics = try metrics.map { try ListenAddress.parse($0, flag: "--metrics") }
            if let metrics = configuration.metrics {
                guard case .tcp = metrics else {
                    throw ValidationError("--metrics \(metrics): give HOST:PORT (Prometheus scrapes over TCP)")
                }
                guard !all.contains(metrics), metrics != configuration.stats else {
                    throw ValidationError("--metrics \(metrics) is already used by another socket; give it its own address")
                }
            }
            configuration.cheaper = try cheaper.policy(processes: processes)
            return configuration
        } catch let error as PoolError {
            throw ValidationError(error.description)
        }
    }

    /// `--uid` / `--gid` resolved to numbers (nil when neither is given).
    public func identity() throws -> (uid: uid_t?, gid: gid_t?)? {
        guard uid != nil || gid != nil else { return nil }
        do {
            return (try uid.map(Privileges.userID), try gid.map(Privileges.groupID))
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The async flags' one-line errors, each naming the flag.
    func checkAsyncFlags() throws {
        if asgi != nil && (wsgi != nil || wsgiFile != nil) {
            throw ValidationError("--asgi and --wsgi/--wsgi-file both name an app; give one of them")
        }
        if asgi != nil && app != nil { throw ValidationError("--asgi and --app both name an app; give one of them") }
        if let workerConnections, !(1...100_000).contains(workerConnections) {
            throw ValidationError(
                "--worker-connections \(workerConnections): give the requests in flight per worker, from 1 to 100000")
        }
        if let gevent {
            guard wsgi != nil || wsgiFile != nil else {
                throw ValidationError(
                    asgi != nil
                        ? "--gevent is for WSGI apps; an --asgi app already runs on its own event loop (bound it with --worker-connections)"
                        : "--gevent needs a WSGI app: give --wsgi MODULE[:CALLABLE] or --wsgi-file FILE")
            }
            guard (1...100_000).contains(gevent) else {
                throw ValidationError("--gevent \(gevent): give the greenlets per worker (requests in flight), from 1 to 100000")
            }
            if threadsOption != nil {
                throw ValidationError(
                    "--threads with --gevent: a gevent worker runs every request as a greenlet on one thread, so it "
                        + "takes no --threads; --gevent \(gevent) already sets how many run at once (gunicorn's --worker-connections)")
            }
            if workerConnections != nil {
                throw ValidationError(
                    "--worker-connections with --gevent: --gevent N is the number of greenlets per worker; give one of them")
            }
        } else if geventNoPatch {
            throw ValidationError("--gevent-no-patch is for --gevent N: give --gevent too")
        }
        if asgi != nil, threadsOption != nil {
            throw ValidationError(
                "--threads with --asgi: an ASGI worker runs its requests on one event loop; bound them with "
                    + "--worker-connections N instead")
        }
        if workerConnections != nil && asgi == nil && gevent == nil {
            throw ValidationError(
                "--worker-connections is for --asgi apps (gevent workers take --gevent N); a WSGI app on threads takes --threads")
        }
        if let wsMaxSize {
            guard asgi != nil else { throw ValidationError("--ws-max-size is for --asgi apps (WebSockets)") }
            guard (125...(1 << 30)).contains(wsMaxSize) else {
                throw ValidationError("--ws-max-size \(wsMaxSize): give a size in bytes from 125 to \(1 << 30)")
            }
        }
        if let loop {
            guard asgi != nil else { throw ValidationError("--loop is for --asgi apps") }
            guard ["auto", "asyncio", "uvloop"].contains(loop) else {
                throw ValidationError("--loop \(loop): choose auto, asyncio or uvloop")
            }
        }
    }

    /// What the logs call the app.
    public var appName: String {
        if let asgi { return "asgi \(asgi)" }
        if let wsgi { return "wsgi \(wsgi)" }
        if let wsgiFile { return "wsgi-file \(wsgiFile)" }
        return app ?? "?"
    }

    /// The WSGI app's flags, or nil when a built-in app is served.
    public func wsgiConfiguration() throws -> WSGIConfiguration? {
        let source: WSGIConfiguration.Source
        var callableName = callable ?? (asgi != nil ? "app" : "application")
        switch (wsgi ?? asgi, wsgiFile) {
        case (nil, nil):
            for (flag, given) in [
                ("--callable", callable != nil), ("--chdir", chdir != nil), ("--pythonpath", !pythonPath.isEmpty),
                ("--virtualenv", virtualenv != nil), ("--python", python != nil), ("--py-autoreload", pyAutoreload > 0),
                ("--reload", reload),
            ] where given {
                throw ValidationError(
                    "\(flag) is for Python apps: give --wsgi MODULE[:CALLABLE], --wsgi-file FILE or --asgi MODULE[:APP] too")
            }
            return nil
        case (let module?, nil):
            let parts = module.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 {
                guard callable == nil else {
                    throw ValidationError(
                        "\(asgi != nil ? "--asgi" : "--wsgi") \(module) names its callable already; drop --callable \(callable!)")
                }
                callableName = String(parts[1])
            }
            source = .module(String(parts[0]))
        case (nil, let file?):
            source = .file(file)
        case (_?, _?):
            throw ValidationError("--wsgi and --wsgi-file both name an app; give one of them")
        }
        if app != nil { throw ValidationError("--app and --wsgi/--wsgi-file both name an app; give one of them") }
        let environment = try env.map { entry -> (name: String, value: String) in
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--env \(entry): give KEY=VALUE")
            }
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
        var configuration = WSGIConfiguration(
            source: source, callable: callableName, chdir: chdir, pythonPath: pythonPath, virtualenv: virtualenv,
            environment: environment, multithread: threads > 1, multiprocess: processes > 1,
            log: { WorkerRuntime.log($0) })
        configuration.autoreloadSeconds = autoreloadSeconds
        if asgi != nil {
            configuration.interface = .asgi(loop: loop ?? "auto")
        } else if gevent != nil {
            configuration.interface = .gevent(patch: !geventNoPatch)
        }
        return configuration
    }

    public func handler() throws -> any Handler {
        if try wsgiConfiguration() != nil {
            // Imported in each worker (WorkerRuntime's loadApp); the master runs no app code.
            return ClosureHandler { _ in Response(status: 503, "The WSGI app is not loaded\n") }
        }
        guard let app else {
            throw ValidationError(
                "no app to serve: give --app NAME (one of \(BuiltinApps.names.joined(separator: ", "))), "
                    + "--wsgi MODULE[:CALLABLE] or --wsgi-file FILE")
        }
        guard let handler = BuiltinApps.named(app) else {
            throw ValidationError("--app \(app): unknown app; choose one of \(BuiltinApps.names.joined(separator: ", "))")
        }
        return handler
    }
}
