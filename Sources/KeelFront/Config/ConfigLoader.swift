#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import TOMLKit

/// Reads keel.toml into a validated `FrontConfiguration`. Every problem is one `ConfigError` naming the key to fix,
/// so `keel check` and startup can print it and stop before anything is bound.
public enum ConfigLoader {
    static let documentKeys = [
        "event_loops", "listen", "limits", "log", "gzip", "mime_types", "tls", "upstream", "route", "pool", "server_tokens",
        "open_file_cache", "metrics", "status",
    ]
    static let gzipKeys = ["enabled", "level", "min_length", "types"]
    static let openFileCacheKeys = ["max", "inactive", "valid"]
    static let limitsKeys = [
        "client_max_body_size", "client_body_buffer_size", "client_body_temp_path", "max_header_size",
        "client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout", "keepalive_requests", "max_tunnels", "tunnel_idle_timeout",
        "max_connections", "graceful_timeout", "http2_max_concurrent_streams", "http2_max_requests", "http2_initial_window_size",
    ]
    static let logKeys = ["access", "error", "level"]
    static let upstreamKeys = [
        "servers", "max_fails", "fail_timeout", "connect_timeout", "send_timeout", "read_timeout", "keepalive", "keepalive_timeout",
    ]
    static let routeActionKeys = ["uwsgi", "proxy", "static", "root", "redirect", "return"]
    static let staticOptionKeys = [
        "index", "gzip_static", "cache_control", "expires", "fallback", "dotfiles", "follow_symlinks",
    ]
    static let routeKeys = ["host", "path"] + routeActionKeys + ["status", "body", "content_type"] + staticOptionKeys
    static let poolKeys = ["name", "args", "command"]

    /// Reads and parses the file at `path`; relative `static` directories resolve against the file's directory.
    public static func load(path: String) throws(ConfigError) -> FrontConfiguration {
        try parse(toml: try readFile(path), file: path)
    }

    /// Parses and validates a TOML document; `file` names it in errors and anchors relative `static` paths.
    public static func parse(toml: String, file: String = "keel.toml") throws(ConfigError) -> FrontConfiguration {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: toml)
        } catch let error as TOMLParseError {
            let position = error.source.begin
            throw ConfigError(
                file: file, key: "",
                message: "TOML syntax error at line \(position.line), column \(position.column): \(error.description)")
        } catch {
            throw ConfigError(file: file, key: "", message: "TOML syntax error: \(error)")
        }
        let document = ConfigTable(root, path: "", file: file)
        try document.rejectUnknownKeys(documentKeys)
        var config = FrontConfiguration()
        if let eventLoops = try document.int("event_loops", example: "2") { config.eventLoops = eventLoops }
        if let tokens = try document.bool("server_tokens") { config.serverTokens = tokens }
        config.listeners = try parseListeners(document)
        if let limits = try document.table("limits") { config.limits = try parseLimits(limits) }
        if let log = try document.table("log") { config.logs = try parseLogs(log) }
        if let gzip = try document.table("gzip") { config.compression = try parseCompression(gzip) }
        if let cache = try document.table("open_file_cache") { config.openFileCache = try parseOpenFileCache(cache) }
        if let tls = try document.table("tls") { config.tls = try parseTLS(tls, baseDirectory: directory(of: file)) }
        if let types = try document.table("mime_types") {
            for extensionName in types.table.keys {
                let type = try types.string(extensionName, example: "\"text/markdown\"") ?? ""
                config.mimeTypes[extensionName.lowercased()] = type
            }
        }
        if let metrics = try document.table("metrics") { config.metrics = try parseMetrics(metrics) }
        if let status = try document.table("status") { config.status = try parseStatus(status) }
        if let upstreams = try document.table("upstream") { config.upstreams = try parseUpstreams(upstreams) }
        let baseDirectory = directory(of: file)
        for route in try document.tables("route", example: "[[route]]") ?? [] {
            config.routes.append(try parseRoute(route, baseDirectory: baseDirectory, upstreams: &config.upstreams))
        }
        for (index, pool) in (try document.tables("pool", example: "[[pool]]") ?? []).enumerated() {
            config.pools.append(try parsePool(pool, index: index))
        }
        try validate(config, file: file)
        return config
    }

    // MARK: - Sections

    private static func parseListeners(_ document: ConfigTable) throws(ConfigError) -> [FrontConfiguration.Listener] {
        guard let value = document.table["listen"] else { return [] }
        var entries: [(key: String, value: any TOMLValueConvertible)] = [("listen", value)]
        if let array = value.array { entries = array.enumerated().map { ("listen[\($0.offset)]", $0.element) } }
        var listeners: [FrontConfiguration.Listener] = []
        for (key, entry) in entries {
            var addressKey = key
            var address = entry
            var tls = false
            var redirect = false
            var http2 = true
            var h2c = false
            var name: String?
            if let table = entry.table {
                let listen = ConfigTable(table, path: key, file: document.file)
                try listen.rejectUnknownKeys(["address", "tls", "redirect_to_https", "http2", "h2c", "name"])
                guard let value = table["address"] else {
                    throw listen.problem("", "missing address; write address = \"127.0.0.1:8080\"")
                }
                (addressKey, address) = (listen.keyPath("address"), value)
                tls = try listen.bool("tls") ?? false
                redirect = try listen.bool("redirect_to_https") ?? false
                if tls && redirect {
                    throw listen.problem("redirect_to_https", "a TLS listener cannot redirect to itself; set it on a plaintext listener")
                }
                http2 = try listen.bool("http2") ?? true
                h2c = try listen.bool("h2c") ?? false
                // A socket unit's FileDescriptorName= for this listener (systemd socket activation).
                name = try listen.string("name", example: "web")
                if table["http2"] != nil && !tls {
                    throw listen.problem("http2", "only TLS listeners negotiate HTTP/2 by ALPN; for plaintext HTTP/2 write h2c = true")
                }
                if h2c && redirect {
                    throw listen.problem("h2c", "a redirect_to_https listener sends every client to TLS; HTTP/2 is offered there by ALPN, so drop h2c here")
                }
                if h2c && tls {
                    throw listen.problem("h2c", "h2c is HTTP/2 without TLS; on a TLS listener HTTP/2 is offered by ALPN (http2 = true)")
                }
            }
            do throws(ConfigValueError) {
                var listener: FrontConfiguration.Listener?
                if let text = address.string { listener = try ConfigValues.listener(text) }
                if let port = address.int { listener = try ConfigValues.listener(port: port) }
                if var listener {
                    listener.tls = tls
                    listener.redirectToHTTPS = redirect
                    listener.http2 = http2
                    listener.h2c = h2c
                    listener.name = name
                    listeners.append(listener)
                    continue
                }
            } catch {
                throw ConfigError(file: document.file, key: addressKey, message: error.message)
            }
            let got = ConfigTable.describe(address)
            throw ConfigError(
                file: document.file, key: addressKey,
                message: "expected an address like \"127.0.0.1:8080\" or a port number, got \(got)")
        }
        return listeners
    }

    private static func parseLimits(_ table: ConfigTable) throws(ConfigError) -> FrontConfiguration.Limits {
        try table.rejectUnknownKeys(limitsKeys)
        var limits = FrontConfiguration.Limits()
        if let size = try table.size("client_max_body_size") { limits.clientMaxBodySize = size }
        if let size = try table.size("client_body_buffer_size") { limits.clientBodyBufferSize = Int(clamping: size) }
        if let path = try table.string("client_body_temp_path", example: "\"/tmp\"") {
            limits.clientBodyTempPath = path
        }
        if let size = try table.size("max_header_size") { limits.maxHeaderSize = Int(clamping: size) }
        if let time = try table.duration("client_header_timeout") { limits.clientHeaderTimeout = time }
        if let time = try table.duration("client_body_timeout") { limits.clientBodyTimeout = time }
        if let time = try table.duration("send_timeout") { limits.sendTimeout = time }
        if let time = try table.duration("keepalive_timeout") { limits.keepaliveTimeout = time }
        if let count = try table.int("keepalive_requests", example: "1000") { limits.keepaliveRequests = count }
        if let count = try table.int("max_connections", example: "10000") { limits.maxConnections = count }
        if let time = try table.duration("graceful_timeout") { limits.gracefulTimeout = time }
        if let count = try table.int("max_tunnels", example: "1024") { limits.maxTunnels = count }
        if let time = try table.duration("tunnel_idle_timeout") { limits.tunnelIdleTimeout = time }
        if let count = try table.int("http2_max_concurrent_streams", example: "128") { limits.http2MaxConcurrentStreams = count }
        if let count = try table.int("http2_max_requests", example: "1000") { limits.http2MaxRequests = count }
        if let size = try table.size("http2_initial_window_size") { limits.http2InitialWindowSize = Int(clamping: size) }
        return limits
    }

    private static func parseCompression(_ table: ConfigTable) throws(ConfigError) -> FrontConfiguration.Compression {
        try table.rejectUnknownKeys(gzipKeys)
        var compression = FrontConfiguration.Compression()
        if let enabled = try table.bool("enabled") { compression.enabled = enabled }
        if let level = try table.int("level", example: "1") { compression.level = level }
        if let length = try table.size("min_length") { compression.minLength = Int(clamping: length) }
        if table.table["types"] != nil {
            compression.types = try table.stringArray("types", example: "[\"text/*\", \"application/json\"]").map { $0.lowercased() }
        }
        return compression
    }

    private static func parseOpenFileCache(_ table: ConfigTable) throws(ConfigError) -> FrontConfiguration.OpenFileCache {
        try table.rejectUnknownKeys(openFileCacheKeys)
        var cache = FrontConfiguration.OpenFileCache()
        if let max = try table.int("max", example: "1000") { cache.max = max }
        if let inactive = try table.duration("inactive") { cache.inactive = inactive }
        if let valid = try table.duration("valid") { cache.valid = valid }
        return cache
    }

    private static func parseLogs(_ table: ConfigTable) throws(ConfigError) -> FrontConfiguration.Logs {
        try table.rejectUnknownKeys(logKeys)
        var logs = FrontConfiguration.Logs()
        if let access = try table.string("access", example: "\"/var/log/keel/access.log\", \"-\" or \"off\"") {
            logs.accessLog = access == "off" ? nil : access
        }
        if let error = try table.string("error", example: "\"/var/log/keel/error.log\" or \"-\"") {
            logs.errorLog = error
        }
        if let level = try table.string("level", example: "\"info\"") { logs.level = level }
        return logs
    }

    private static func parseUpstreams(
        _ section: ConfigTable
    ) throws(ConfigError) -> [String: FrontConfiguration.Upstream] {
        var upstreams: [String: FrontConfiguration.Upstream] = [:]
        for name in section.table.keys {
            guard ConfigValues.isUpstreamName(name) else {
                throw section.problem(name, "invalid upstream name; use letters, digits, \"_\" and \"-\"")
            }
            guard let table = try section.table(name) else { continue }
            try table.rejectUnknownKeys(upstreamKeys)
            var servers: [FrontConfiguration.ServerAddress] = []
            for (key, text) in try table.strings("servers", example: "\"unix:/run/app.sock\"") ?? [] {
                do throws(ConfigValueError) {
                    servers.append(try ConfigValues.serverAddress(text, allowHTTP: true))
                } catch {
                    throw table.problem(key, error.message)
                }
            }
            var upstream = FrontConfiguration.Upstream(name: name, servers: servers)
            if let count = try table.int("max_fails", example: "1") { upstream.maxFails = count }
            if let time = try table.duration("fail_timeout") { upstream.failTimeout = time }
            if let time = try table.duration("connect_timeout") { upstream.connectTimeout = time }
            if let time = try table.duration("send_timeout") { upstream.sendTimeout = time }
            if let time = try table.duration("read_timeout") { upstream.readTimeout = time }
            if let count = try table.int("keepalive", example: "128") { upstream.keepalive = count }
            if let time = try table.duration("keepalive_timeout") { upstream.keepaliveTimeout = time }
            upstreams[name] = upstream
        }
        return upstreams
    }

    private static func parseRoute(
        _ route: ConfigTable, baseDirectory: String, upstreams: inout [String: FrontConfiguration.Upstream]
    ) throws(ConfigError) -> FrontConfiguration.Route {
        try route.rejectUnknownKeys(routeKeys)
        let actions = routeActionKeys.filter { route.table.contains(key: $0) }
        guard let actionKey = actions.first else {
            throw route.problem("", "no action; give one of uwsgi, proxy, static, root, redirect or return")
        }
        if actions.count > 1 {
            throw route.problem(
                "", "more than one action (\(actions.joined(separator: ", "))); a route does one thing, keep one")
        }
        for (key, owner) in [("status", "redirect"), ("body", "return"), ("content_type", "return")]
        where route.table.contains(key: key) && actionKey != owner {
            throw route.problem(key, "\(key) only goes with \(owner); remove it or make this a \(owner) route")
        }
        for key in staticOptionKeys where route.table.contains(key: key) && actionKey != "static" && actionKey != "root" {
            throw route.problem(key, "\(key) only goes with static or root; remove it or make this a static route")
        }
        var hosts: [String] = []
        for (_, host) in try route.strings("host", example: "\"example.com\" or \"*.example.com\"") ?? [] {
            // Host headers compare case-insensitively, so patterns are kept lowercase.
            hosts.append(host.lowercased())
        }
        let path = try route.string("path", example: "\"/api\"") ?? "/"
        let action: FrontConfiguration.Action
        switch actionKey {
        case "uwsgi", "proxy":
            let isProxy = actionKey == "proxy"
            let example = isProxy ? "\"app\" or \"http://127.0.0.1:8000\"" : "\"app\" or \"unix:/run/app.sock\""
            let reference = try route.string(actionKey, example: example) ?? ""
            let name: String
            do throws(ConfigValueError) {
                name = try upstreamName(for: reference, isProxy: isProxy, upstreams: &upstreams)
            } catch {
                throw route.problem(actionKey, error.message)
            }
            action = isProxy ? .proxy(upstream: name) : .uwsgi(upstream: name)
        case "static", "root":
            let directory = try route.string(actionKey, example: "\"./public\"") ?? ""
            var files = FrontConfiguration.StaticFiles(
                directory: directory.isEmpty ? directory : absolutePath(directory, relativeTo: baseDirectory))
            files.keepsPrefix = actionKey == "root"
            if route.table.contains(key: "index") {
                files.index = try route.strings("index", example: "\"index.html\"")?.map(\.value) ?? []
            }
            if let flag = try route.bool("gzip_static") { files.gzipStatic = flag }
            files.cacheControl = try route.string("cache_control", example: "\"public, max-age=3600\"")
            files.expires = try route.duration("expires")
            if let flag = try route.bool("dotfiles") { files.dotfiles = flag }
            if let flag = try route.bool("follow_symlinks") { files.symlinksOutside = flag }
            if let reference = try route.string("fallback", example: "\"app\" or \"unix:/run/app.sock\"") {
                do throws(ConfigValueError) {
                    files.fallback = try upstreamName(for: reference, isProxy: false, upstreams: &upstreams)
                } catch {
                    throw route.problem("fallback", error.message)
                }
            }
            action = .staticFiles(files)
        case "redirect":
            let location = try route.string("redirect", example: "\"https://example.com/\"") ?? ""
            action = .redirect(location: location, status: try route.int("status", example: "301") ?? 302)
        default:
            action = .fixed(
                status: try route.int("return", example: "200") ?? 200,
                body: try route.string("body", example: "\"ok\"") ?? "",
                contentType: try route.string("content_type", example: "\"text/plain\"") ?? "text/plain")
        }
        return FrontConfiguration.Route(hosts: hosts, pathPrefix: path, action: action)
    }

    /// A route's `uwsgi`/`proxy` value: an upstream name as is, or an inline address that becomes an implicit
    /// upstream named by the address, so routes always reference `upstreams`.
    static func upstreamName(
        for reference: String, isProxy: Bool, upstreams: inout [String: FrontConfiguration.Upstream]
    ) throws(ConfigValueError) -> String {
        if ConfigValues.isUpstreamName(reference) { return reference }
        let address = try ConfigValues.serverAddress(reference, allowHTTP: isProxy)
        let name = address.description
        if upstreams[name] == nil { upstreams[name] = FrontConfiguration.Upstream(name: name, servers: [address]) }
        return name
    }

    private static func parsePool(_ pool: ConfigTable, index: Int) throws(ConfigError) -> FrontConfiguration.Pool {
        try pool.rejectUnknownKeys(poolKeys)
        let name = try pool.string("name", example: "\"app\"") ?? "pool\(index)"
        let argsKey: String
        var args: [String]
        switch (pool.table.contains(key: "args"), pool.table.contains(key: "command")) {
        case (true, true):
            throw pool.problem("", "give either args or command, not both")
        case (false, false):
            throw pool.problem(
                "", "no keel-pool arguments; give args = [\"--socket\", \"/run/app.sock\", \"--app\", \"hello\"] "
                    + "or command = \"keel-pool --socket /run/app.sock --app hello\"")
        case (true, false):
            argsKey = "args"
            args = try pool.stringArray("args", example: "[\"--socket\", \"/run/app.sock\"]")
            if let first = args.first, isPoolExecutable(first) { args.removeFirst() }
        case (false, true):
            argsKey = "command"
            let command = try pool.string("command", example: "\"keel-pool --socket /run/app.sock\"") ?? ""
            do throws(ConfigError) {
                args = try splitCommandLine(command)
            } catch {
                throw pool.problem("command", error.message)
            }
        }
        if let message = poolArgumentsProblem(args) { throw pool.problem(argsKey, message) }
        return FrontConfiguration.Pool(name: name, args: args, socket: poolSocket(fromArgs: args))
    }
}
