#if canImport(Glibc)
import Glibc
#endif
import KeelApp

/// What one worker process needs, decided by the master and passed on its command line.
public struct WorkerConfiguration: Sendable {
    public enum Wire: String, Sendable {
        case uwsgi
        case http
    }

    /// An inherited listening socket and what it speaks.
    public struct InheritedListener: Sendable {
        public var fd: Int32
        public var proto: Wire
        public init(fd: Int32, proto: Wire) {
            self.fd = fd
            self.proto = proto
        }
    }

    public var id: Int
    public var listeners: [InheritedListener]
    public var threads: Int
    public var handler: any Handler
    /// An app with a loop of its own (ASGI, gevent); `threads` is then --worker-connections.
    public var asyncApp: (any AsyncApp)?
    /// --ws-max-size: the largest WebSocket message (and frame) an async app accepts; larger ones close with 1009
    /// (default uvicorn's, 16 MiB).
    public var webSocketMaxSize = 16 * 1024 * 1024
    /// Largest request body accepted, in bytes; 0 = no limit (uWSGI's --limit-post).
    public var limitPost: Int
    /// The limit actually enforced: bodies are buffered, and a buffer holds at most 4 GiB − 1.
    public var effectiveBodyLimit: Int {
        let bufferLimit = Int(UInt32.max) - 1
        return limitPost > 0 ? min(limitPost, bufferLimit) : bufferLimit
    }
    /// Seconds a connection may stay silent while a request is expected (uWSGI's --socket-timeout).
    public var socketTimeout: Int
    /// Write end of the pipe on which the worker tells the master "ready" or its startup error.
    public var statusFD: Int32?
    /// The master's pid: the worker ends itself if it is orphaned.
    public var masterPID: Int32?
    /// Requests after which this worker recycles itself (0 = never); jitter already added.
    public var maxRequests: Int = 0
    /// `--uid`/`--gid`: the identity workers switch to once they hold their sockets (nil = keep the master's).
    public var dropTo: (uid: uid_t?, gid: gid_t?)? = nil
    /// `--logto`: reopened on USR1 (the master forwards the signal after reopening its own).
    public var logTo: String?
    /// The pool's shared scoreboard and this worker's record in it (nil when run without a master).
    public var scoreboard: (board: Scoreboard, record: Int)?

    public init(
        id: Int, listeners: [InheritedListener], threads: Int, handler: any Handler, limitPost: Int,
        socketTimeout: Int, statusFD: Int32?, masterPID: Int32?
    ) {
        self.id = id
        self.listeners = listeners
        self.threads = threads
        self.handler = handler
        self.limitPost = limitPost
        self.socketTimeout = socketTimeout
        self.statusFD = statusFD
        self.masterPID = masterPID
    }
}
