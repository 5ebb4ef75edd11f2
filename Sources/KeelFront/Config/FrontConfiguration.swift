import KeelTLS
import NIOCore

/// Everything `keel` runs from, parsed and validated once at load (`ConfigLoader`); the hot path only reads it.
/// A HUP builds a new value and swaps it in whole, so a request always sees one consistent configuration.
public struct FrontConfiguration: Sendable, Equatable {
    /// `[[listen]]` / `--listen`: where keel accepts HTTP connections.
    public var listeners: [Listener]
    /// `[upstream.NAME]`: named groups of backend servers, referenced by routes.
    public var upstreams: [String: Upstream]
    /// `[[route]]`: host + longest path prefix → what answers.
    public var routes: [Route]
    /// `[limits]`: sizes and timeouts for client connections.
    public var limits: Limits
    /// `[log]`: access and error logs.
    public var logs: Logs
    /// `[mime_types]`: extension → media type, over the built-in table (nginx `types`).
    public var mimeTypes: [String: String] = [:]
    /// `[gzip]`: response compression on the system zlib.
    public var compression: Compression = Compression()
    /// `[tls]` / `--cert --key`: certificates and TLS settings for the listeners with `tls = true`.
    public var tls: TLS?
    /// `[[pool]]` / `--pool`: keel-pool processes keel starts first and supervises (the bundle).
    public var pools: [Pool]
    /// `event_loops` / `--event-loops`: NIO event loop threads (default: one per core).
    public var eventLoops: Int
    /// `[open_file_cache]`: opened static files kept per event loop (nginx's `open_file_cache`); nil is off.
    public var openFileCache: OpenFileCache?
    /// `server_tokens` (nginx's name): the version in the `Server` header; off sends "keel" alone.
    public var serverTokens = true
    /// `[metrics]` / `--metrics`: Prometheus metrics on their own listener; nil is off.
    public var metrics: Metrics?
    /// `[status]`: the live status page on keel's listeners; nil is off.
    public var status: Status?

    public init(
        listeners: [Listener] = [], upstreams: [String: Upstream] = [:], routes: [Route] = [],
        limits: Limits = Limits(), logs: Logs = Logs(), pools: [Pool] = [], eventLoops: Int = System.coreCount
    ) {
        self.listeners = listeners
        self.upstreams = upstreams
        self.routes = routes
        self.limits = limits
        self.logs = logs
        self.pools = pools
        self.eventLoops = eventLoops
    }

    public struct Listener: Sendable, Equatable {
        /// "HOST:PORT" as written (IPv6 as "[::1]:8080").
        public var host: String
        public var port: Int
        /// `tls = true` / `--tls-listen`: TLS is terminated here with the `[tls]` certificates (nginx `listen … ssl`).
        public var tls: Bool
        /// `redirect_to_https = true`: every request on this plaintext listener gets a 301 to the https URL.
        public var redirectToHTTPS: Bool
        /// `http2` (TLS listeners, on by default): ALPN offers h2 before http/1.1 (nginx `http2 on`).
        public var http2: Bool
        /// `h2c = true` (plaintext listeners): HTTP/2 with prior knowledge beside HTTP/1.1, told apart by the preface.
        public var h2c: Bool
        /// `name`: matched against LISTEN_FDNAMES (a socket unit's FileDescriptorName=) before the address is.
        public var name: String?
        /// A listening socket inherited from systemd that replaces this listener's bind (SocketActivation).
        public var inheritedFD: Int32?
        public init(host: String, port: Int, tls: Bool = false, redirectToHTTPS: Bool = false, http2: Bool = true, h2c: Bool = false) {
            self.host = host
            self.port = port
            self.tls = tls
            self.redirectToHTTPS = redirectToHTTPS
            self.http2 = http2
            self.h2c = h2c
        }
        /// This listener speaks HTTP/2 (by ALPN on TLS, by prior knowledge on plaintext).
        public var speaksHTTP2: Bool { tls ? http2 : h2c }
        public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
        public var description: String { tls ? "\(address) (TLS)" : address }
    }

    /// `[tls]`: what TLS listeners serve. The certificates are loaded into a `TLSServerContext` at start and on HUP.
    public struct TLS: Sendable, Equatable {
        public var settings: TLSConfiguration
        /// `handshake_timeout`: a client must finish the handshake in this time (slow or silent clients are closed).
        public var handshakeTimeout: TimeAmount = .seconds(10)
        /// `hsts`: the Strict-Transport-Security value added to every response over TLS (nginx `add_header … always`).
        public var hsts: String?
        /// Where each certificate was configured ("tls.certificate[0]", "--cert[0]"), for error messages.
        public var certificateKeys: [String]
        /// The file the `[tls]` section came from ("command line" for flags).
        public var file: String

        public init(settings: TLSConfiguration, certificateKeys: [String], file: String) {
            self.settings = settings
            self.certificateKeys = certificateKeys
            self.file = file
        }
    }

    /// A backend server address: a unix socket path or a TCP host and port.
    public enum ServerAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
        case unix(path: String)
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unix(let path): "unix:\(path)"
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }
    }

    public struct Upstream: Sendable, Equatable {
        public var name: String
        public var servers: [ServerAddress]
        /// nginx `max_fails`: connect failures in a row before a server is skipped.
        public var maxFails: Int
        /// nginx `fail_timeout`: how long a failed server is skipped.
        public var failTimeout: TimeAmount
        public var connectTimeout: TimeAmount
        public var sendTimeout: TimeAmount
        public var readTimeout: TimeAmount
        /// Idle connections kept per event loop per server (nginx `keepalive`): HTTP/1.1 backends, and uwsgi servers
        /// that speak the keel wire (keel-pool). 0: one connection per request, and keel-pool is not offered the wire.
        public var keepalive: Int
        /// nginx's upstream `keepalive_timeout`: an idle kept connection is closed after this.
        public var keepaliveTimeout: TimeAmount

        public init(
            name: String, servers: [ServerAddress], maxFails: Int = 1, failTimeout: TimeAmount = .seconds(10),
            connectTimeout: TimeAmount = .seconds(5), sendTimeout: TimeAmount = .seconds(60),
            readTimeout: TimeAmount = .seconds(60), keepalive: Int = 128, keepaliveTimeout: TimeAmount = .seconds(60)
        ) {
            self.name = name
            self.servers = servers
            self.maxFails = maxFails
            self.failTimeout = failTimeout
            self.connectTimeout = connectTimeout
            self.sendTimeout = sendTimeout
            self.readTimeout = readTimeout
            self.keepalive = keepalive
            self.keepaliveTimeout = keepaliveTimeout
        }
    }

    public struct Route: Sendable, Equatable {
        /// Host patterns: exact ("example.com") or suffix ("*.example.com"). Empty = the default server.
        public var hosts: [String]
        /// Path prefix, starting with "/"; the longest matching prefix wins.
        public var pathPrefix: String
        public var action: Action

        public init(hosts: [String] = [], pathPrefix: String = "/", action: Action) {
            self.hosts = hosts
            self.pathPrefix = pathPrefix
            self.action = action
        }
    }

    public enum Action: Sendable, Equatable {
        /// `uwsgi = "NAME"` (an `[upstream.NAME]`) or an inline server address.
        case uwsgi(upstream: String)
        /// `proxy = "NAME"` or an inline "http://HOST:PORT": HTTP/1.1 upstream with keep-alive.
        case proxy(upstream: String)
        /// `static = "DIR"` (nginx `alias`: the route prefix stripped) or `root = "DIR"` (nginx `root`: the whole
        /// path under DIR), with the file-serving options of the route.
        case staticFiles(StaticFiles)
        /// `redirect = "URL"` with `status` (default 302); a URL ending in "/" gets the rest of the path appended.
        case redirect(location: String, status: Int)
        /// `return = STATUS` with `body` and `content_type`: a fixed response.
        case fixed(status: Int, body: String, contentType: String)
    }

    /// A static route's directory and options (nginx `root`/`alias`, `index`, `gzip_static`, `expires`, `try_files`).
    public struct StaticFiles: Sendable, Equatable {
        public var directory: String
        /// `root` semantics: the request path is looked up whole under the directory, prefix included.
        public var keepsPrefix = false
        /// `index`: files tried, in order, for a path naming a directory.
        public var index = ["index.html"]
        /// `gzip_static`: serve FILE.gz when it exists and the client accepts gzip.
        public var gzipStatic = false
        /// `cache_control`: the Cache-Control value sent with files (e.g. "public, max-age=3600").
        public var cacheControl: String?
        /// `expires`: adds Expires and Cache-Control max-age, as nginx's `expires`.
        public var expires: TimeAmount?
        /// `fallback`: a uwsgi upstream that answers when no file matches (nginx `try_files $uri @app`).
        public var fallback: String?
        /// `dotfiles`: serve names starting with "." (hidden by default: .git, .env).
        public var dotfiles = false
        /// `follow_symlinks`: follow symlinks that lead outside the directory (off: they answer 403).
        public var symlinksOutside = false

        public init(directory: String) {
            self.directory = directory
        }
    }

    public struct Limits: Sendable, Equatable {
        /// nginx `client_max_body_size` (0 = no limit) → 413.
        public var clientMaxBodySize: Int64 = 1 << 20
        /// nginx `client_body_buffer_size`: bodies larger than this go to a temp file.
        public var clientBodyBufferSize: Int = 16 * 1024
        /// Where temp files for large bodies go (nginx `client_body_temp_path`).
        public var clientBodyTempPath: String = "/tmp"
        /// Largest request line + header block → 431 (nginx `large_client_header_buffers` total).
        public var maxHeaderSize: Int = 32 * 1024
        /// nginx `client_header_timeout`: the whole head must arrive in this time → 408.
        public var clientHeaderTimeout: TimeAmount = .seconds(60)
        /// nginx `client_body_timeout`: longest wait between two reads of a request body → 408.
        public var clientBodyTimeout: TimeAmount = .seconds(60)
        /// nginx `send_timeout`: longest a client may take to accept more response bytes.
        public var sendTimeout: TimeAmount = .seconds(60)
        /// nginx `keepalive_timeout`: an idle keep-alive connection is closed after this.
        public var keepaliveTimeout: TimeAmount = .seconds(75)
        /// nginx `keepalive_requests`: requests on one connection before keel closes it.
        public var keepaliveRequests: Int = 1000
        /// nginx `worker_connections` across all loops: above it keel stops accepting until one closes.
        public var maxConnections: Int = 10_000
        /// On TERM, how long in-flight requests get before connections are closed.
        public var gracefulTimeout: TimeAmount = .seconds(30)
        /// WebSocket tunnels open at once across all loops; above it an upgrade is answered 503.
        public var maxTunnels: Int = 1024
        /// A WebSocket tunnel with no byte either way for this long is closed (nginx: proxy_read_timeout).
        public var tunnelIdleTimeout: TimeAmount = .seconds(600)
        /// nginx `http2_max_concurrent_streams`: streams a client may have open on one HTTP/2 connection.
        public var http2MaxConcurrentStreams: Int = 128
        /// nginx `http2_max_requests` (now its `keepalive_requests`): streams on one connection before GOAWAY.
        public var http2MaxRequests: Int = 1000
        /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may send before keel reads them (nginx
        /// `http2_body_preread_size`, 64k); the connection window is 16 times it.
        public var http2InitialWindowSize: Int = 65536

        public init() {}
    }

    /// nginx's `open_file_cache max= inactive=` and `open_file_cache_valid`.
    public struct OpenFileCache: Sendable, Equatable {
        /// `max`: files kept per event loop.
        public var max = 1000
        /// `inactive`: a file unused this long is closed.
        public var inactive: TimeAmount = .seconds(20)
        /// `valid`: a file is opened anew (and its metadata re-read) once this has passed.
        public var valid: TimeAmount = .seconds(60)

        public init() {}
    }

    /// nginx's `gzip`, `gzip_comp_level`, `gzip_min_length`, `gzip_types`.
    public struct Compression: Sendable, Equatable {
        /// `enabled` (nginx `gzip on`, as Debian's nginx.conf ships it).
        public var enabled = true
        /// `level` 1...9 (nginx `gzip_comp_level`, default 1: fast, most of the gain).
        public var level = 1
        /// `min_length`: responses announcing fewer bytes stay as they are (nginx `gzip_min_length`).
        public var minLength = 256
        /// `types`: media types, "text/*" and "application/*+json" patterns allowed (nginx `gzip_types`).
        public var types = [
            "text/*", "application/json", "application/*+json", "application/javascript", "application/xml",
            "application/*+xml", "image/svg+xml", "application/wasm",
        ]

        public init() {}
    }

    public struct Logs: Sendable, Equatable {
        /// Access log: a path, "-" for stdout, or nil for off.
        public var accessLog: String? = "-"
        /// Error log: a path or "-" for stderr.
        public var errorLog: String = "-"
        /// "debug", "info", "notice", "warning", "error".
        public var level: String = "info"

        public init() {}
    }

    /// A keel-pool keel runs and supervises: `args` are keel-pool's own flags.
    public struct Pool: Sendable, Equatable {
        public var name: String
        public var args: [String]
        /// The unix socket or TCP address the pool serves on (from its `--socket`), which keel waits for.
        public var socket: ServerAddress?

        public init(name: String, args: [String], socket: ServerAddress?) {
            self.name = name
            self.args = args
            self.socket = socket
        }
    }
}
