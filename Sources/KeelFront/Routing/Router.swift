/// Host → longest path prefix → action, built once per configuration (an immutable table, as Hummingbird's trie).
/// Host lookup follows nginx's `server_name` order: exact name, then the longest `*.suffix`, then the default server.
public struct Router: Sendable {
    public struct Match: Sendable, Equatable {
        public var route: FrontConfiguration.Route
        /// The route's index in the configuration, for logs.
        public var index: Int
    }

    /// Routes of one host pattern, longest prefix first.
    private struct RouteList: Sendable {
        var entries: [(prefix: String, match: Match)] = []
        mutating func add(_ match: Match) {
            entries.append((match.route.pathPrefix, match))
            entries.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
        }
        /// Byte-wise, as nginx compares locations: String.hasPrefix would compare canonically equivalent Unicode.
        func first(for path: Substring) -> Match? {
            entries.first { path.utf8.starts(with: $0.prefix.utf8) }?.match
        }
    }

    private var exactHosts: [String: RouteList] = [:]
    /// Suffixes without the "*" (".example.com"), longest first.
    private var suffixHosts: [(suffix: String, routes: RouteList)] = []
    private var defaultRoutes = RouteList()

    public init(routes: [FrontConfiguration.Route]) {
        for (index, route) in routes.enumerated() {
            let match = Match(route: route, index: index)
            if route.hosts.isEmpty {
                defaultRoutes.add(match)
                continue
            }
            for host in route.hosts.map({ $0.lowercased() }) {
                if host.hasPrefix("*.") {
                    let suffix = String(host.dropFirst())
                    if let at = suffixHosts.firstIndex(where: { $0.suffix == suffix }) {
                        suffixHosts[at].routes.add(match)
                    } else {
                        var list = RouteList()
                        list.add(match)
                        suffixHosts.append((suffix, list))
                    }
                } else {
                    exactHosts[host, default: RouteList()].add(match)
                }
            }
        }
        suffixHosts.sort { $0.suffix.utf8.count > $1.suffix.utf8.count }
    }

    /// The route for a request; `host` is the Host header (any port and case), `path` the URI path without query.
    /// As with nginx server blocks, a host that matches a pattern is answered only by that pattern's routes (nil →
    /// 404); only a host no pattern matches falls to the default server.
    public func match(host: String?, path: Substring) -> Match? {
        routes(forHost: host).first(for: path)
    }

    private func routes(forHost host: String?) -> RouteList {
        guard let name = host.map(Self.normalizedHost), !name.isEmpty else { return defaultRoutes }
        if let list = exactHosts[name] { return list }
        // "*.example.com" matches "a.example.com", not "example.com" itself (nginx's wildcard rule).
        if let hit = suffixHosts.first(where: { name.utf8.reversed().starts(with: $0.suffix.utf8.reversed()) }) {
            return hit.routes
        }
        return defaultRoutes
    }

    /// "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]"; a trailing dot is dropped, as nginx does.
    static func normalizedHost(_ host: String) -> String {
        // On the UTF-8 view: Character-wise searches would run grapheme breaking for every request.
        var name = Substring(host)
        let bytes = name.utf8
        if bytes.first == UInt8(ascii: "[") {
            if let close = bytes.firstIndex(of: UInt8(ascii: "]")) { name = name[..<bytes.index(after: close)] }
        } else if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            name = name[..<colon]
        }
        if name.utf8.last == UInt8(ascii: ".") { name = name[..<name.utf8.index(before: name.utf8.endIndex)] }
        return ASCIIText.lowercased(name)
    }
}
