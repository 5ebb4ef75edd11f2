#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

extension ConfigLoader {
    /// Log levels `[log] level` accepts, quietest last.
    public static let logLevels = ["debug", "info", "notice", "warning", "error"]

    /// Checks ranges, files and cross references of a built configuration: the same rules for a loaded file and for
    /// a configuration assembled from flags. Keys in errors use the TOML names (`route[1].proxy`,
    /// `limits.send_timeout`).
    public static func validate(_ config: FrontConfiguration, file: String = "command line") throws(ConfigError) {
        func fail(_ key: String, _ message: String) -> ConfigError {
            ConfigError(file: file, key: key, message: message)
        }

        guard (1...256).contains(config.eventLoops) else {
            throw fail("event_loops", "must be from 1 to 256, got \(config.eventLoops)")
        }
        for (index, listener) in config.listeners.enumerated() {
            guard (1...65535).contains(listener.port) else {
                throw fail("listen[\(index)]", "port \(listener.port): use a port from 1 to 65535")
            }
            if let first = config.listeners[..<index].firstIndex(where: { $0.host == listener.host && $0.port == listener.port }) {
                throw fail("listen[\(index)]", "\(listener.address) is already listen[\(first)]; remove one")
            }
        }
        if let (key, message) = tlsProblem(config) { throw fail(key, message) }
        if let (key, message) = observabilityProblem(config) { throw fail(key, message) }
        if let (key, message) = limitsProblem(config.limits) { throw fail("limits.\(key)", message) }
        if let (key, message) = logsProblem(config.logs) { throw fail("log.\(key)", message) }
        if let (key, message) = compressionProblem(config.compression) { throw fail("gzip.\(key)", message) }
        if let cache = config.openFileCache {
            if cache.max < 1 { throw fail("open_file_cache.max", "must be at least 1 (leave the table out to turn the cache off), got \(cache.max)") }
            if cache.inactive <= .zero { throw fail("open_file_cache.inactive", "must be longer than 0, like \"20s\"") }
            if cache.valid <= .zero { throw fail("open_file_cache.valid", "must be longer than 0, like \"60s\"") }
        }
        for name in config.upstreams.keys.sorted() {
            guard let upstream = config.upstreams[name] else { continue }
            if let (key, message) = upstreamProblem(upstream) { throw fail("upstream.\(name).\(key)", message) }
        }
        for (index, route) in config.routes.enumerated() {
            if let (key, message) = routeProblem(route, upstreams: config.upstreams) {
                throw fail(key.isEmpty ? "route[\(index)]" : "route[\(index)].\(key)", message)
            }
            if let first = config.routes[..<index].firstIndex(where: {
                $0.pathPrefix == route.pathPrefix && Set($0.hosts) == Set(route.hosts)
            }) {
                throw fail(
                    "route[\(index)]",
                    "same host and path as route[\(first)], so it would never match; remove one or change its path")
            }
        }
        var sockets: [FrontConfiguration.ServerAddress] = []
        for (index, pool) in config.pools.enumerated() {
            if pool.name.isEmpty { throw fail("pool[\(index)].name", "empty name; give the pool a name like \"app\"") }
            if let first = config.pools[..<index].firstIndex(where: { $0.name == pool.name }) {
                throw fail("pool[\(index)].name", "\"\(pool.name)\" is also pool[\(first)]'s name; rename one")
            }
            if let message = poolArgumentsProblem(pool.args) { throw fail("pool[\(index)].args", message) }
            guard let socket = pool.socket ?? poolSocket(fromArgs: pool.args) else { continue }
            if let first = sockets.firstIndex(of: socket) {
                throw fail(
                    "pool[\(index)].args", "--socket \(socket) is also pool[\(first)]'s; give each pool its own socket")
            }
            sockets.append(socket)
        }
    }

    private static func limitsProblem(_ limits: FrontConfiguration.Limits) -> (String, String)? {
        if limits.clientMaxBodySize < 0 { return ("client_max_body_size", "cannot be negative (0 = no limit)") }
        if limits.clientBodyBufferSize < 1024 || limits.clientBodyBufferSize >= 1 << 30 {
            let size = limits.clientBodyBufferSize
            return ("client_body_buffer_size", "must be at least 1k and less than 1g, got \(size) bytes")
        }
        if let message = directoryProblem(limits.clientBodyTempPath) { return ("client_body_temp_path", message) }
        if limits.maxHeaderSize < 1024 || limits.maxHeaderSize > 1 << 20 {
            return ("max_header_size", "must be from 1k to 1m, got \(limits.maxHeaderSize) bytes")
        }
        let timeouts = [
            ("client_header_timeout", limits.clientHeaderTimeout), ("client_body_timeout", limits.clientBodyTimeout),
            ("send_timeout", limits.sendTimeout), ("graceful_timeout", limits.gracefulTimeout),
            ("tunnel_idle_timeout", limits.tunnelIdleTimeout),
        ]
        for (key, timeout) in timeouts where timeout <= .zero { return (key, "must be more than 0, e.g. \"60s\"") }
        if limits.keepaliveTimeout < .zero { return ("keepalive_timeout", "cannot be negative (0 = no keep-alive)") }
        if limits.keepaliveRequests < 1 { return ("keepalive_requests", "must be at least 1") }
        if limits.maxConnections < 1 { return ("max_connections", "must be at least 1") }
        if limits.maxTunnels < 0 { return ("max_tunnels", "cannot be negative (0 refuses every WebSocket upgrade)") }
        if limits.http2MaxConcurrentStreams < 1 || limits.http2MaxConcurrentStreams > 10_000 {
            return ("http2_max_concurrent_streams", "must be from 1 to 10000, got \(limits.http2MaxConcurrentStreams)")
        }
        if limits.http2MaxRequests < 1 { return ("http2_max_requests", "must be at least 1") }
        // RFC 9113 §6.5.2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error.
        if limits.http2InitialWindowSize < 1024 || limits.http2InitialWindowSize > 1 << 30 {
            return ("http2_initial_window_size", "must be from 1k to 1g, got \(limits.http2InitialWindowSize) bytes")
        }
        return nil
    }

    private static func compressionProblem(_ compression: FrontConfiguration.Compression) -> (String, String)? {
        if !(1...9).contains(compression.level) { return ("level", "must be from 1 (fastest) to 9 (smallest), got \(compression.level)") }
        if compression.minLength < 0 { return ("min_length", "cannot be negative") }
        for (index, type) in compression.types.enumerated() {
            let parts = type.split(separator: "/", omittingEmptySubsequences: false)
            let valid = type == "*" || (parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty && type.filter { $0 == "*" }.count <= 1)
            if !valid { return ("types[\(index)]", "\"\(type)\" is not a media type like \"text/*\" or \"application/json\"") }
        }
        return nil
    }

    private static func logsProblem(_ logs: FrontConfiguration.Logs) -> (String, String)? {
        if !logLevels.contains(logs.level) {
            let suggestion = ConfigValues.didYouMean(logs.level, among: logLevels)
            let levels = logLevels.joined(separator: ", ")
            return ("level", "unknown level \"\(logs.level)\"\(suggestion); use one of \(levels)")
        }
        if let access = logs.accessLog, access != "-" {
            if access.isEmpty { return ("access", "empty path; give a path, \"-\" for stdout or \"off\"") }
            if let message = directoryProblem(parentDirectory(of: access)) { return ("access", message) }
        }
        if logs.errorLog == "off" { return ("error", "the error log cannot be off; give a path or \"-\" for stderr") }
        if logs.errorLog != "-" {
            if logs.errorLog.isEmpty { return ("error", "empty path; give a path or \"-\" for stderr") }
            if let message = directoryProblem(parentDirectory(of: logs.errorLog)) { return ("error", message) }
        }
        return nil
    }

    private static func upstreamProblem(_ upstream: FrontConfiguration.Upstream) -> (String, String)? {
        if upstream.servers.isEmpty {
            return ("servers", "no servers; give servers = [\"unix:/run/app.sock\"] or [\"127.0.0.1:9000\"]")
        }
        if upstream.maxFails < 0 { return ("max_fails", "cannot be negative (0 = never mark a server down)") }
        if upstream.keepalive < 0 { return ("keepalive", "cannot be negative (0 = no idle connections kept)") }
        if upstream.keepaliveTimeout <= .zero { return ("keepalive_timeout", "must be positive (use keepalive = 0 to keep no connections)") }
        let timeouts = [
            ("fail_timeout", upstream.failTimeout), ("connect_timeout", upstream.connectTimeout),
            ("send_timeout", upstream.sendTimeout), ("read_timeout", upstream.readTimeout),
        ]
        for (key, timeout) in timeouts where timeout <= .zero { return (key, "must be more than 0, e.g. \"10s\"") }
        return nil
    }

    /// The first problem with one route as (key inside the route, message); "" names the route itself.
    private static func routeProblem(
        _ route: FrontConfiguration.Route, upstreams: [String: FrontConfiguration.Upstream]
    ) -> (String, String)? {
        if !route.pathPrefix.hasPrefix("/") { return ("path", "must start with \"/\", e.g. \"/api\"") }
        for host in route.hosts {
            let name = host.hasPrefix("*.") ? host.dropFirst(2) : Substring(host)
            if name.isEmpty || name.contains("*") || name.contains(where: { $0.isWhitespace || $0 == "/" }) {
                return ("host", "\"\(host)\" is not a host name; write \"example.com\" or \"*.example.com\"")
            }
        }
        switch route.action {
        case .uwsgi(let name), .proxy(let name):
            guard upstreams[name] == nil else { return nil }
            let key = if case .proxy = route.action { "proxy" } else { "uwsgi" }
            let suggestion = ConfigValues.didYouMean(name, among: upstreams.keys.sorted())
            return (key, "unknown upstream \"\(name)\"\(suggestion) (define [upstream.\(name)] or fix the name)")
        case .staticFiles(let files):
            let key = files.keepsPrefix ? "root" : "static"
            if files.directory.isEmpty { return (key, "empty directory; give the directory to serve, e.g. \"./public\"") }
            if let problem = directoryProblem(files.directory) { return (key, problem) }
            if let fallback = files.fallback, upstreams[fallback] == nil {
                return ("fallback", "unknown upstream \"\(fallback)\" (define [upstream.\(fallback)] or fix the name)")
            }
            for (index, name) in files.index.enumerated() where name.isEmpty || name.contains("/") {
                return ("index[\(index)]", "\"\(name)\" must be a file name, without \"/\"")
            }
            if let expires = files.expires, expires < .zero { return ("expires", "cannot be negative") }
            return nil
        case .redirect(let location, let status):
            if location.isEmpty { return ("redirect", "empty location; give a URL like \"https://example.com/\"") }
            if ![301, 302, 303, 307, 308].contains(status) {
                return ("status", "redirect status must be 301, 302, 303, 307 or 308, got \(status)")
            }
        case .fixed(let status, _, _):
            if !(100...599).contains(status) { return ("return", "status must be from 100 to 599, got \(status)") }
        }
        return nil
    }

    // MARK: - keel-pool command lines

    /// Splits a command line the way a POSIX shell splits words: whitespace separates, '…' is literal, "…" keeps
    /// spaces (backslash escapes `"` and `\` inside), a backslash outside quotes escapes any character.
    /// A leading `keel-pool` (or a path ending in `/keel-pool`) is dropped: keel runs its own keel-pool.
    public static func splitCommandLine(_ line: String) throws(ConfigError) -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                if quote == "\"" && character != "\"" && character != "\\" { word.append("\\") }
                word.append(character)
                escaped = false
            } else if character == "\\" && quote != "'" {
                escaped = true
                inWord = true
            } else if let open = quote {
                if character == open { quote = nil } else { word.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character.isWhitespace {
                if inWord { words.append(word) }
                (word, inWord) = ("", false)
            } else {
                word.append(character)
                inWord = true
            }
        }
        if escaped { throw ConfigError(file: "command line", key: "", message: "ends with a lone backslash") }
        if let open = quote {
            throw ConfigError(file: "command line", key: "", message: "unterminated \(open) quote; close it")
        }
        if inWord { words.append(word) }
        if let first = words.first, isPoolExecutable(first) { words.removeFirst() }
        return words
    }

    /// The address keel connects to for a pool: its first `--socket X`, `--socket=X` or `-s X`, read as keel-pool
    /// reads it (a wildcard host such as ":3031" is reached on loopback). nil when absent or not an address.
    public static func poolSocket(fromArgs args: [String]) -> FrontConfiguration.ServerAddress? {
        guard let text = socketArgument(in: args) else { return nil }
        return try? ConfigValues.poolSocketAddress(text)
    }

    static func isPoolExecutable(_ word: String) -> Bool { word == "keel-pool" || word.hasSuffix("/keel-pool") }

    /// The raw `--socket` value ("" when the flag is last), or nil when there is none.
    static func socketArgument(in args: [String]) -> String? {
        for (index, argument) in args.enumerated() {
            if argument == "--" { return nil }
            if argument == "--socket" || argument == "-s" { return index + 1 < args.count ? args[index + 1] : "" }
            if argument.hasPrefix("--socket=") { return String(argument.dropFirst("--socket=".count)) }
        }
        return nil
    }

    /// Why keel cannot run a pool with these arguments, or nil.
    static func poolArgumentsProblem(_ args: [String]) -> String? {
        if args.isEmpty { return "no keel-pool arguments; give at least --socket PATH and --app NAME" }
        guard let socket = socketArgument(in: args) else {
            return "no --socket; keel needs the pool's uwsgi socket to wait for and send requests to, "
                + "add --socket /run/NAME.sock (or -s HOST:PORT)"
        }
        if socket.isEmpty { return "--socket has no value; give --socket /run/NAME.sock" }
        do throws(ConfigValueError) {
            _ = try ConfigValues.poolSocketAddress(socket)
        } catch {
            return "--socket \(error.message)"
        }
        return nil
    }

    // MARK: - Files

    static func readFile(_ path: String) throws(ConfigError) -> String {
        func fail(_ what: String) -> ConfigError {
            ConfigError(file: path, key: "", message: "cannot \(what): \(String(cString: strerror(errno)))")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw fail("open") }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw fail("read")
            }
            bytes.append(contentsOf: chunk[..<count])
            // A configuration is a few KB; stop early on a device or a wrong path instead of filling memory.
            if bytes.count > 16 << 20 {
                throw ConfigError(file: path, key: "", message: "larger than 16 MiB; is this the configuration file?")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, key: "", message: "not UTF-8 text; save the file as UTF-8")
        }
        return text
    }

    /// nil if `path` is an existing directory, else what is wrong with it.
    static func directoryProblem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return "directory \"\(path)\": \(String(cString: strerror(errno))); create it or fix the path"
        }
        return (info.st_mode & S_IFMT) == S_IFDIR ? nil : "\"\(path)\" is not a directory"
    }

    /// The directory part of a file path: "" for a bare name (the current directory).
    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "" }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }

    static func parentDirectory(of file: String) -> String {
        let directory = directory(of: file)
        return directory.isEmpty ? "." : directory
    }

    /// `path` made absolute against `directory` (then the current directory), with "." and empty parts dropped.
    public static func absolutePath(_ path: String, relativeTo directory: String) -> String {
        var joined = path
        if !path.hasPrefix("/") && !directory.isEmpty { joined = "\(directory)/\(path)" }
        if !joined.hasPrefix("/"), let cwd = getcwd(nil, 0) {
            joined = "\(String(cString: cwd))/\(joined)"
            free(cwd)
        }
        return "/" + joined.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}
