import KeelTLS

/// Loads the configured certificates into a `TLSServerContext`, turning a file problem into a `ConfigError` that
/// names the key it came from (`tls.certificate[1].key`, `--cert[0]`). Used by `keel check`, startup and HUP alike.
public enum FrontTLS {
    /// nil when no listener uses TLS.
    public static func context(for configuration: FrontConfiguration) throws(ConfigError) -> TLSServerContext? {
        guard configuration.listeners.contains(where: \.tls), let tls = configuration.tls else { return nil }
        var settings = tls.settings
        // h2 first when any TLS listener offers it; a listener with http2 = false narrows its own connections.
        if configuration.listeners.contains(where: { $0.tls && $0.http2 }) { settings.applicationProtocols = ["h2", "http/1.1"] }
        do {
            return try TLSServerContext(configuration: settings)
        } catch {
            throw ConfigError(file: tls.file, key: key(for: error, in: tls), message: error.message)
        }
    }

    private static func key(for error: TLSContextError, in tls: FrontConfiguration.TLS) -> String {
        let index = error.certificateIndex
        let base = index.flatMap { $0 < tls.certificateKeys.count ? tls.certificateKeys[$0] : nil } ?? "tls.certificate"
        let fromFlags = tls.file == "command line"
        switch error.part {
        case .certificate: return fromFlags ? "--cert[\(index ?? 0)]" : "\(base).cert"
        case .key: return fromFlags ? "--key[\(index ?? 0)]" : "\(base).key"
        case .setting(let name): return "tls.\(name)"
        }
    }
}
