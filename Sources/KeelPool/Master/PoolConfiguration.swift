#if canImport(Glibc)
import Glibc
#endif

/// The master's validated configuration: everything is checked here, before anything is bound or spawned.
public struct PoolConfiguration: Sendable {
    public var uwsgiSockets: [ListenAddress]
    public var httpSockets: [ListenAddress]
    /// Per socket of `uwsgiSockets + httpSockets`, the systemd socket that replaces its bind (nil: bind it).
    public var inheritedFDs: [Int32?] = []
    public var backlog: Int
    public var chmodSocket: mode_t?
    public var processes: Int
    public var threads: Int
    public var appName: String
    public var pidfile: String?
    /// Seconds TERM waits for in-flight requests before workers are killed.
    public var gracefulTimeout: Int
    /// Async workers (ASGI, gevent): `threads` is --worker-connections, and stats list only the rows in use.
    public var isAsync = false
    /// Kill a worker whose request has run longer than this many seconds (0 = never).
    public var harakiri: Int = 0
    /// `--chown-socket`: owner and group of unix socket files (nil = the master's).
    public var chownSocket: (uid: uid_t?, gid: gid_t?)?
    /// `--logto`: the file stdout/stderr go to (nil = inherited).
    public var logTo: String?
    /// Where the stats server listens (nil = no stats server).
    public var stats: ListenAddress?
    /// Where the master serves Prometheus `/metrics` (nil = not served).
    public var metrics: ListenAddress?
    /// `--cheaper`: adaptive workers between `cheaper.minimum` and `processes` (nil = always `processes`).
    public var cheaper: CheaperPolicy?
    /// Recycle a worker after it has lived this many seconds (0 = never).
    public var maxWorkerLifetime: Int = 0
    /// Recycle a worker whose resident memory exceeds this many MiB (0 = never).
    public var reloadOnRSS: Int = 0
    /// Arguments each worker gets after the executable: `_worker` and the pool's own flags (or the interpreter's
    /// bootstrap, then the pool's flags).
    public var workerArguments: [String]
    /// What workers are spawned from: nil = this executable; a WSGI app's interpreter otherwise.
    public var workerExecutable: String?
    /// Which Python runs the app, for the start-up line (nil = no Python).
    public var pythonHost: String?

    public init(
        uwsgiSockets: [ListenAddress], httpSockets: [ListenAddress], backlog: Int, chmodSocket: mode_t?,
        processes: Int, threads: Int, appName: String, pidfile: String?, gracefulTimeout: Int,
        workerArguments: [String]
    ) {
        self.uwsgiSockets = uwsgiSockets
        self.httpSockets = httpSockets
        self.backlog = backlog
        self.chmodSocket = chmodSocket
        self.processes = processes
        self.threads = threads
        self.appName = appName
        self.pidfile = pidfile
        self.gracefulTimeout = gracefulTimeout
        self.workerArguments = workerArguments
    }
}
