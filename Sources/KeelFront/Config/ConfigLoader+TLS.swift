import KeelTLS
import NIOCore

/// `[tls]`: certificates (`[[tls.certificate]]` with `cert` and `key`) and the settings nginx's `ssl_*` directives
/// hold. The files are only named here; `FrontTLS` loads them, so `keel check`, startup and HUP read them the same way.
extension ConfigLoader {
    static let tlsKeys = [
        "certificate", "min_version", "ciphers", "cipher_suites", "session_timeout", "session_cache_size",
        "session_tickets", "ticket_key_rotation", "handshake_timeout", "hsts", "prefer_server_ciphers",
    ]

    static func parseTLS(_ table: ConfigTable, baseDirectory: String) throws(ConfigError) -> FrontConfiguration.TLS {
        try table.rejectUnknownKeys(tlsKeys)
        var certificates: [TLSConfiguration.Certificate] = []
        var keys: [String] = []
        let example = "[[tls.certificate]] with cert = \"/etc/keel/site.pem\" and key = \"/etc/keel/site.key\""
        for (index, entry) in (try table.tables("certificate", example: example) ?? []).enumerated() {
            try entry.rejectUnknownKeys(["cert", "key"])
            guard let cert = try entry.string("cert", example: "\"/etc/keel/site.pem\""), !cert.isEmpty else {
                throw entry.problem("cert", "missing; give the PEM certificate chain file")
            }
            guard let key = try entry.string("key", example: "\"/etc/keel/site.key\""), !key.isEmpty else {
                throw entry.problem("key", "missing; give the PEM private key file of \(cert)")
            }
            certificates.append(.init(chainPath: absolutePath(cert, relativeTo: baseDirectory), keyPath: absolutePath(key, relativeTo: baseDirectory)))
            keys.append("tls.certificate[\(index)]")
        }
        var tls = FrontConfiguration.TLS(settings: TLSConfiguration(certificates: certificates), certificateKeys: keys, file: table.file)
        if let version = try table.string("min_version", example: "\"TLSv1.2\"") {
            guard let parsed = TLSConfiguration.ProtocolVersion(rawValue: version) else {
                let names = TLSConfiguration.ProtocolVersion.allCases.map(\.rawValue)
                throw table.problem("min_version", "unknown version \"\(version)\"; use one of \(names.joined(separator: ", "))\(ConfigValues.didYouMean(version, among: names))")
            }
            tls.settings.minimumVersion = parsed
        }
        if let ciphers = try table.string("ciphers", example: "\"ECDHE-ECDSA-AES128-GCM-SHA256:…\"") { tls.settings.ciphers = ciphers }
        if let suites = try table.string("cipher_suites", example: "\"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384\"") {
            tls.settings.cipherSuites = suites
        }
        if let timeout = try table.duration("session_timeout") { tls.settings.sessionTimeout = Int(timeout.nanoseconds / 1_000_000_000) }
        if let size = try table.int("session_cache_size", example: "20480") { tls.settings.sessionCacheSize = size }
        if let tickets = try table.bool("session_tickets") { tls.settings.sessionTickets = tickets }
        if let rotation = try table.duration("ticket_key_rotation") {
            tls.settings.ticketKeyRotation = Int(rotation.nanoseconds / 1_000_000_000)
        }
        if let timeout = try table.duration("handshake_timeout") { tls.handshakeTimeout = timeout }
        if let prefer = try table.bool("prefer_server_ciphers") { tls.settings.preferServerCiphers = prefer }
        if let hsts = try table.string("hsts", example: "\"max-age=31536000; includeSubDomains\"") { tls.hsts = hsts.isEmpty ? nil : hsts }
        return tls
    }

    /// TLS listeners need certificates; a redirect needs a TLS listener to go to; values in range.
    static func tlsProblem(_ config: FrontConfiguration) -> (String, String)? {
        let tlsListener = config.listeners.firstIndex(where: \.tls)
        if let index = tlsListener, (config.tls?.settings.certificates ?? []).isEmpty {
            return ("listen[\(index)]", "a TLS listener needs a certificate; add [[tls.certificate]] with cert and key (or --cert FILE --key FILE)")
        }
        if tlsListener == nil, let index = config.listeners.firstIndex(where: \.redirectToHTTPS) {
            return ("listen[\(index)].redirect_to_https", "there is no TLS listener to redirect to; add one with tls = true")
        }
        guard let tls = config.tls else { return nil }
        if tls.settings.sessionTimeout < 1 { return ("tls.session_timeout", "must be at least 1s") }
        if tls.settings.sessionCacheSize < 0 { return ("tls.session_cache_size", "must be 0 (no cache) or more") }
        if tls.settings.ticketKeyRotation < 60 { return ("tls.ticket_key_rotation", "must be at least 1m") }
        if tls.handshakeTimeout < .milliseconds(100) { return ("tls.handshake_timeout", "must be at least 100ms") }
        if let hsts = tls.hsts, !hsts.lowercased().hasPrefix("max-age=") || hsts.utf8.contains(where: { $0 < 32 || $0 == 127 }) {
            return ("tls.hsts", "expected a Strict-Transport-Security value like \"max-age=31536000; includeSubDomains\", got \"\(hsts)\"")
        }
        return nil
    }
}
