extension FrontConfiguration {
    /// `[metrics]` / `--metrics HOST:PORT`: Prometheus's `/metrics` on a listener of its own.
    public struct Metrics: Sendable, Equatable {
        /// `listen`: where `/metrics` is served (never on the public listeners).
        public var listener: Listener

        public init(listener: Listener) {
            self.listener = listener
        }
    }

    /// `[status]`: the live status page (HTML at `path`, its data at `path` + ".json") on keel's own listeners.
    public struct Status: Sendable, Equatable {
        /// `path`: where the page is served, before any route is matched.
        public var path = "/keel/status"
        /// `allow`: client networks that may see the page; every other client gets 403 (nginx's
        /// `allow …; deny all;`). Loopback only by default.
        public var allow = AddressRange.loopback
        /// `[status.pools]`: name → stats address of keel-pools keel does not start itself (`keel-pool --stats`).
        public var pools: [String: ServerAddress] = [:]

        public init() {}

        /// Where the page's script reads its data from, beside the page.
        public var jsonPath: String { path + ".json" }
    }
}
