import ArgumentParser
import KeelFront
import KeelPoolCommands
import KeelSystem
import KeelTLS

/// `keel version` and `keel --version`: what a bug report needs, the libraries as loaded (not as built against).
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print keel's version, commit, and the Swift, OpenSSL, zlib and Python it uses.")

    func run() {
        print(Self.report)
    }

    static var report: String {
        """
        keel \(KeelVersion.current)
        commit:  \(BuildInfo.gitCommit)
        swift:   \(BuildInfo.swiftVersion)
        openssl: \(OpenSSLLibrary.version)
        zlib:    \(ZlibLibrary.version)
        python:  \(LinkedPython.version) (embedded, for WSGI/ASGI pools)
        """
    }
}
