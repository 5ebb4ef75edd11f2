import KeelTLS

#if canImport(Glibc)
import Glibc
#endif

/// The demo's self-signed certificate for localhost: made on the first run, kept in the user's state directory
/// (`$XDG_STATE_HOME/keel`, else `~/.local/state/keel`, else a per-user directory under /tmp), remade when it is
/// about to expire. Never part of the repository.
enum DemoCertificate {
    struct Made {
        var certificate: TLSConfiguration.Certificate
        /// True when this run created it (the demo says so).
        var created: Bool
    }

    static func ensure() throws -> Made {
        let directory = try stateDirectory()
        let certificate = TLSConfiguration.Certificate(chainPath: "\(directory)/demo-localhost.pem", keyPath: "\(directory)/demo-localhost.key")
        if SelfSignedCertificate.isUsable(certificatePath: certificate.chainPath), access(certificate.keyPath, R_OK) == 0 {
            return Made(certificate: certificate, created: false)
        }
        try SelfSignedCertificate.write(certificatePath: certificate.chainPath, keyPath: certificate.keyPath)
        return Made(certificate: certificate, created: true)
    }

    private static func stateDirectory() throws -> String {
        var candidates: [String] = []
        if let state = environment("XDG_STATE_HOME"), state.hasPrefix("/") { candidates.append("\(state)/keel") }
        if let home = environment("HOME"), home.hasPrefix("/") { candidates.append("\(home)/.local/state/keel") }
        candidates.append("/tmp/keel-demo-\(getuid())")
        for candidate in candidates where makeDirectories(candidate) { return candidate }
        throw SelfSignedCertificate.Failure(description: "no writable directory for the demo certificate (tried \(candidates.joined(separator: ", ")))")
    }

    /// mkdir -p with mode 0700; true when the directory exists and is ours to write.
    private static func makeDirectories(_ path: String) -> Bool {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/\(part)"
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { return false }
        }
        var info = stat()
        return stat(path, &info) == 0 && info.st_uid == getuid() && access(path, W_OK) == 0
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: value, count: strlen(value)), as: UTF8.self)
    }
}
