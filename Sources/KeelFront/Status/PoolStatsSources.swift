#if canImport(Glibc)
import Glibc
#endif

/// Which stats server the status page reads for each pool: a `[[pool]]`'s own `--stats` when its args give one,
/// else one keel adds on a unix socket in a private directory; then the outside pools of `[status.pools]`.
struct PoolStatsSources {
    /// The pools as keel starts them (with any `--stats` keel added).
    var pools: [FrontConfiguration.Pool]
    var sources: [StatusRefresher.Source]
    /// The private directory keel made for the added sockets, removed at exit.
    var directory: String?

    init(_ configuration: FrontConfiguration) throws {
        pools = configuration.pools
        sources = []
        guard let status = configuration.status else { return }
        for index in pools.indices {
            if let text = Self.statsArgument(in: pools[index].args),
                let address = try? ConfigValues.poolSocketAddress(text)
            {
                sources.append(.init(name: pools[index].name, address: address))
                continue
            }
            if directory == nil {
                var template = Array("/tmp/keel-stats-XXXXXX".utf8CString)
                guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                    throw PoolSupervisor.StartError(
                        description:
                            "cannot create a directory for the pools' stats sockets under /tmp (errno \(errno))")
                }
                directory = String(cString: made)
            }
            let path = "\(directory!)/pool\(index).sock"
            // Before any "--": what follows it is the app's, not keel-pool's.
            let end = pools[index].args.firstIndex(of: "--") ?? pools[index].args.endIndex
            pools[index].args.insert(contentsOf: ["--stats", path], at: end)
            sources.append(.init(name: pools[index].name, address: .unix(path: path)))
        }
        for name in status.pools.keys.sorted() {
            if let address = status.pools[name] { sources.append(.init(name: name, address: address)) }
        }
    }

    /// Removes the sockets keel-pool left (it unlinks its own on a clean stop) and the directory.
    func removeDirectory() {
        guard let directory else { return }
        for index in pools.indices { unlink("\(directory)/pool\(index).sock") }
        rmdir(directory)
    }

    /// The raw `--stats` value, or nil when the args have none.
    static func statsArgument(in args: [String]) -> String? {
        for (index, argument) in args.enumerated() {
            if argument == "--" { return nil }
            if argument == "--stats" { return index + 1 < args.count ? args[index + 1] : nil }
            if argument.hasPrefix("--stats=") { return String(argument.dropFirst("--stats=".count)) }
        }
        return nil
    }
}
