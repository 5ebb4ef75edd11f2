import ArgumentParser
import KeelFront

/// The flags `keel` and `keel check` share: a config file and the quick cases that need none.
struct KeelOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("TOML configuration file (see deploy/keel.toml).", valueName: "file"))
    var configPath: String?

    @Option(name: .customLong("listen"), help: ArgumentHelp("Address to accept HTTP on, HOST:PORT (repeatable; default 127.0.0.1:8080).", valueName: "address"))
    var listen: [String] = []

    @Option(name: .customLong("tls-listen"), help: ArgumentHelp("Address to accept HTTPS on, HOST:PORT (repeatable); needs --cert and --key.", valueName: "address"))
    var tlsListen: [String] = []

    @Option(name: .customLong("cert"), help: ArgumentHelp("PEM certificate chain for TLS (repeatable, paired with --key in order; the first is the default, the others are chosen by SNI).", valueName: "file"))
    var certificates: [String] = []

    @Option(name: .customLong("key"), help: ArgumentHelp("PEM private key of the --cert at the same position (repeatable).", valueName: "file"))
    var keys: [String] = []

    @Option(name: .customLong("uwsgi"), help: ArgumentHelp("uwsgi backend for every path: unix:/path.sock or HOST:PORT (repeat for round-robin).", valueName: "server"))
    var uwsgi: [String] = []

    @Option(name: .customLong("proxy"), help: ArgumentHelp("HTTP/1.1 backend for every path: HOST:PORT or http://HOST:PORT (repeatable).", valueName: "server"))
    var proxy: [String] = []

    @Option(name: .customLong("static"), help: ArgumentHelp("Serve files: /PREFIX=DIR (repeatable).", valueName: "prefix=dir"))
    var staticRoutes: [String] = []

    @Option(name: .customLong("access-log"), help: ArgumentHelp("Access log: a path, - (stdout) or off.", valueName: "path"))
    var accessLog: String?

    @Option(name: .customLong("error-log"), help: ArgumentHelp("Error log: a path or - (stderr).", valueName: "path"))
    var errorLog: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("debug, info, notice, warning or error.", valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("event-loops"), help: ArgumentHelp("Event loop threads (default: one per core).", valueName: "n"))
    var eventLoops: Int?

    @Option(name: .customLong("graceful-timeout"), help: ArgumentHelp("On TERM, seconds in-flight requests get (default 30).", valueName: "seconds"))
    var gracefulTimeout: Int?

    @Option(name: .customLong("pool"), parsing: .unconditionalSingleValue, help: ArgumentHelp("Start and supervise a keel-pool with these flags, e.g. --pool \"--socket /tmp/app.sock --app hello\" (repeatable).", valueName: "flags"))
    var pools: [String] = []

    @Option(name: .customLong("metrics"), help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (a listener of its own).", valueName: "address"))
    var metrics: String?

    @Option(name: .customLong("status"), help: ArgumentHelp("Serve the live status page at this path on the listeners (loopback clients only; [status] in --config for more).", valueName: "path"))
    var statusPath: String?

    /// Nothing to serve was given: the demo runs (with --metrics and --status applied to it).
    var isEmpty: Bool {
        configPath == nil && listen.isEmpty && tlsListen.isEmpty && certificates.isEmpty && keys.isEmpty && uwsgi.isEmpty && proxy.isEmpty && staticRoutes.isEmpty && pools.isEmpty
    }
}
