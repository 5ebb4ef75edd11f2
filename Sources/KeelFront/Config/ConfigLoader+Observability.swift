extension ConfigLoader {
    static let metricsKeys = ["listen"]
    static let statusKeys = ["path", "allow", "pools"]

    static func parseMetrics(_ table: ConfigTable) throws(ConfigError) -> FrontConfiguration.Metrics {
        try table.rejectUnknownKeys(metricsKeys)
        guard let text = try table.string("listen", example: "\"127.0.0.1:9100\"") else {
            throw table.problem("", "missing listen; write listen = \"127.0.0.1:9100\"")
        }
        do throws(ConfigValueError) {
            return FrontConfiguration.Metrics(listener: try ConfigValues.listener(text))
        } catch {
            throw table.problem("listen", error.message)
        }
    }

    static func parseStatus(_ table: ConfigTable) throws(ConfigError) -> FrontConfiguration.Status {
        try table.rejectUnknownKeys(statusKeys)
        var status = FrontConfiguration.Status()
        if let path = try table.string("path", example: "\"/keel/status\"") { status.path = path }
        if table.table.contains(key: "allow") {
            status.allow = []
            for (key, text) in try table.strings("allow", example: "[\"127.0.0.1\", \"10.0.0.0/8\"]") ?? [] {
                do throws(ConfigValueError) {
                    status.allow.append(try AddressRange(text))
                } catch {
                    throw table.problem(key, error.message)
                }
            }
        }
        if let pools = try table.table("pools") {
            for name in pools.table.keys {
                let text = try pools.string(name, example: "\"127.0.0.1:9191\" or \"/run/app-stats.sock\"") ?? ""
                do throws(ConfigValueError) {
                    status.pools[name] = try ConfigValues.poolSocketAddress(text)
                } catch {
                    throw pools.problem(name, error.message)
                }
            }
        }
        return status
    }

    /// The `[metrics]` and `[status]` rules the flags must keep too; nil when both are sound.
    static func observabilityProblem(_ config: FrontConfiguration) -> (String, String)? {
        if let metrics = config.metrics {
            guard (1...65535).contains(metrics.listener.port) else {
                return ("metrics.listen", "port \(metrics.listener.port): use a port from 1 to 65535")
            }
            if let index = config.listeners.firstIndex(where: {
                $0.port == metrics.listener.port && $0.host == metrics.listener.host
            }) {
                return (
                    "metrics.listen", "\(metrics.listener.address) is also listen[\(index)]; give /metrics its own port"
                )
            }
        }
        guard let status = config.status else { return nil }
        if !status.path.hasPrefix("/") {
            return ("status.path", "\"\(status.path)\" must start with \"/\", like \"/keel/status\"")
        }
        if status.path.utf8.contains(where: {
            $0 <= 0x20 || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") || $0 >= 0x7F
        }) {
            return ("status.path", "\"\(status.path)\" may not hold spaces, \"?\", \"#\" or non-ASCII characters")
        }
        for name in status.pools.keys.sorted() where config.pools.contains(where: { $0.name == name }) {
            return (
                "status.pools.\(name)",
                "\"\(name)\" is a [[pool]] keel starts, whose stats keel finds itself; remove it or rename"
            )
        }
        return nil
    }
}
