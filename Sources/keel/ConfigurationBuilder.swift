import KeelFront
import KeelSystem
import KeelTLS

#if canImport(Glibc)
import Glibc
#endif

/// File first, then flags on top (flags win), then validation: a bad value never starts a half-working server.
enum ConfigurationBuilder {
    static func build(_ options: KeelOptions, inherited: [InheritedSocket] = []) throws(ConfigError) -> FrontConfiguration {
        var configuration = FrontConfiguration()
        if let path = options.configPath { configuration = try ConfigLoader.load(path: path) }
        // Listener flags replace the file's listeners as a whole.
        if !options.listen.isEmpty || !options.tlsListen.isEmpty {
            configuration.listeners = []
            for (index, value) in options.listen.enumerated() {
                configuration.listeners.append(try flag("--listen[\(index)]") { () throws(ConfigValueError) in try ConfigValues.listener(value) })
            }
            for (index, value) in options.tlsListen.enumerated() {
                var listener = try flag("--tls-listen[\(index)]") { () throws(ConfigValueError) in try ConfigValues.listener(value) }
                listener.tls = true
                configuration.listeners.append(listener)
            }
        }
        try applyCertificateFlags(options, to: &configuration)
        try adopt(inherited, into: &configuration)
        if configuration.listeners.isEmpty { configuration.listeners = [.init(host: "127.0.0.1", port: 8080)] }

        for line in options.pools {
            let args = try ConfigLoader.splitCommandLine(line)
            configuration.pools.append(.init(name: "pool\(configuration.pools.count + 1)", args: args, socket: ConfigLoader.poolSocket(fromArgs: args)))
        }
        if !options.uwsgi.isEmpty {
            let servers = try options.uwsgi.enumerated().map { (index, value) throws(ConfigError) in
                try flag("--uwsgi[\(index)]") { () throws(ConfigValueError) in try ConfigValues.serverAddress(value) }
            }
            configuration.upstreams["--uwsgi"] = .init(name: "--uwsgi", servers: servers)
            replaceDefaultRoute(&configuration, path: "/", action: .uwsgi(upstream: "--uwsgi"))
        } else if configuration.routes.isEmpty, options.proxy.isEmpty, let socket = configuration.pools.first?.socket {
            // `keel --pool "…"` alone: route everything to that pool, as the bundle is meant to be used.
            configuration.upstreams["--pool"] = .init(name: "--pool", servers: [socket])
            replaceDefaultRoute(&configuration, path: "/", action: .uwsgi(upstream: "--pool"))
        }
        if !options.proxy.isEmpty {
            let servers = try options.proxy.enumerated().map { (index, value) throws(ConfigError) in
                try flag("--proxy[\(index)]") { () throws(ConfigValueError) in try ConfigValues.serverAddress(value, allowHTTP: true) }
            }
            configuration.upstreams["--proxy"] = .init(name: "--proxy", servers: servers)
            replaceDefaultRoute(&configuration, path: "/", action: .proxy(upstream: "--proxy"))
        }
        for (index, value) in options.staticRoutes.enumerated() {
            guard let equals = value.firstIndex(of: "="), value.hasPrefix("/") else {
                throw ConfigError(file: "command line", key: "--static[\(index)]", message: "expected /PREFIX=DIR, got \"\(value)\"")
            }
            let directory = String(value[value.index(after: equals)...])
            var info = stat()
            guard stat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw ConfigError(file: "command line", key: "--static[\(index)]", message: "\"\(directory)\" is not a directory")
            }
            replaceDefaultRoute(
                &configuration, path: String(value[..<equals]),
                action: .staticFiles(.init(directory: ConfigLoader.absolutePath(directory, relativeTo: currentDirectory()))))
        }
        if let accessLog = options.accessLog { configuration.logs.accessLog = accessLog == "off" ? nil : accessLog }
        if let errorLog = options.errorLog { configuration.logs.errorLog = errorLog }
        if let level = options.logLevel { configuration.logs.level = level }
        if let loops = options.eventLoops { configuration.eventLoops = loops }
        try applyObservability(options, to: &configuration)
        if let grace = options.gracefulTimeout { configuration.limits.gracefulTimeout = .seconds(Int64(grace)) }
        if configuration.routes.isEmpty {
            throw ConfigError(file: "command line", key: "", message: "nothing to serve: give --uwsgi, --proxy, --static or --pool, or [[route]] tables in --config")
        }
        try ConfigLoader.validate(configuration)
        return configuration
    }

    /// `--cert`/`--key` pairs replace the file's certificates (its other `[tls]` settings stay).
    private static func applyCertificateFlags(_ options: KeelOptions, to configuration: inout FrontConfiguration) throws(ConfigError) {
        guard !options.certificates.isEmpty || !options.keys.isEmpty else { return }
        guard options.certificates.count == options.keys.count else {
            throw ConfigError(
                file: "command line", key: options.certificates.count > options.keys.count ? "--key" : "--cert",
                message: "--cert and --key come in pairs: \(options.certificates.count) --cert but \(options.keys.count) --key")
        }
        let directory = currentDirectory()
        let certificates = zip(options.certificates, options.keys).map {
            TLSConfiguration.Certificate(
                chainPath: ConfigLoader.absolutePath($0.0, relativeTo: directory), keyPath: ConfigLoader.absolutePath($0.1, relativeTo: directory))
        }
        var tls = configuration.tls ?? FrontConfiguration.TLS(settings: TLSConfiguration(certificates: []), certificateKeys: [], file: "command line")
        tls.settings.certificates = certificates
        tls.certificateKeys = certificates.indices.map { "--cert[\($0)]" }
        tls.file = "command line"
        configuration.tls = tls
    }

    /// The embedded default: http://127.0.0.1:8080 and https://127.0.0.1:8443 (a self-signed certificate from
    /// `DemoCertificate`) in front of two pools: the WSGI example app (`DemoWSGIApp`, written to `socketDirectory`)
    /// on `/`, and keel-pool's built-in Swift `hello` handler on `/swift/`.
    /// `--metrics` and `--status`, over a file's configuration or the demo's.
    static func applyObservability(_ options: KeelOptions, to configuration: inout FrontConfiguration) throws(ConfigError) {
        if let metrics = options.metrics {
            let listener = try flag("--metrics") { () throws(ConfigValueError) in try ConfigValues.listener(metrics) }
            configuration.metrics = .init(listener: listener)
        }
        if let path = options.statusPath {
            var status = configuration.status ?? .init()
            status.path = path
            configuration.status = status
        }
    }

    /// systemd's sockets replace the binds of the listeners they match (SocketActivation's rule, shared with
    /// keel-pool); with no listener configured, each becomes a plaintext listener.
    static func adopt(_ inherited: [InheritedSocket], into configuration: inout FrontConfiguration) throws(ConfigError) {
        guard !inherited.isEmpty else { return }
        guard !configuration.listeners.isEmpty else {
            for socket in inherited {
                guard case .inet(let ip, let port) = socket.address else {
                    throw ConfigError(file: "systemd", key: "LISTEN_FDS", message: "\(socket) is a unix socket; keel listens on TCP (pass it to keel-pool instead)")
                }
                var listener = FrontConfiguration.Listener(host: ip, port: port)
                listener.name = socket.name
                listener.inheritedFD = socket.fd
                configuration.listeners.append(listener)
            }
            return
        }
        let wanted = configuration.listeners.map {
            SocketActivation.Wanted(name: $0.name, address: SocketActivation.resolve(host: $0.host, port: $0.port))
        }
        do {
            let assigned = try SocketActivation.match(wanted, inherited)
            for (index, socket) in assigned.enumerated() { configuration.listeners[index].inheritedFD = socket?.fd }
        } catch {
            throw ConfigError(file: "systemd", key: "LISTEN_FDS", message: error.description)
        }
    }

    static func demo(socketDirectory: String, certificate: TLSConfiguration.Certificate) -> FrontConfiguration {
        var configuration = FrontConfiguration()
        configuration.listeners = [.init(host: "127.0.0.1", port: 8080), .init(host: "127.0.0.1", port: 8443, tls: true)]
        configuration.tls = .init(settings: TLSConfiguration(certificates: [certificate]), certificateKeys: ["demo certificate"], file: "demo")
        // A container's root: the demo apps need no privileges.
        let asRoot = geteuid() == 0 ? ["--allow-root"] : []
        let wsgiSocket = "\(socketDirectory)/wsgi.sock"
        let swiftSocket = "\(socketDirectory)/swift.sock"
        configuration.pools = [
            .init(
                name: "wsgi",
                args: ["--socket", wsgiSocket, "--processes", "2", "--threads", "4", "--wsgi-file", "\(socketDirectory)/\(DemoWSGIApp.fileName)"] + asRoot,
                socket: .unix(path: wsgiSocket)),
            .init(name: "swift", args: ["--socket", swiftSocket, "--processes", "1", "--app", "hello"] + asRoot, socket: .unix(path: swiftSocket)),
        ]
        configuration.upstreams["wsgi"] = .init(name: "wsgi", servers: [.unix(path: wsgiSocket)])
        configuration.upstreams["swift"] = .init(name: "swift", servers: [.unix(path: swiftSocket)])
        configuration.routes = [.init(action: .uwsgi(upstream: "wsgi")), .init(pathPrefix: "/swift/", action: .uwsgi(upstream: "swift"))]
        // The live status page at /keel/status, for loopback clients only.
        configuration.status = .init()
        return configuration
    }

    /// A flag's route for PATH on the default server replaces the file's route for the same PATH.
    private static func replaceDefaultRoute(_ configuration: inout FrontConfiguration, path: String, action: FrontConfiguration.Action) {
        configuration.routes.removeAll { $0.hosts.isEmpty && $0.pathPrefix == path }
        configuration.routes.append(.init(pathPrefix: path, action: action))
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A flag's value error, named by the flag.
    private static func flag<T>(_ name: String, _ parse: () throws(ConfigValueError) -> T) throws(ConfigError) -> T {
        do {
            return try parse()
        } catch {
            throw ConfigError(file: "command line", key: name, message: error.message)
        }
    }
}
