import Foundation

/// The real TLS peers the TLS tests use: the `openssl` command (certificates, s_client) and curl.
enum TLSTools {
    /// A self-signed ECDSA P-256 certificate for `names` in `directory`, as NAME.pem / NAME.key.
    static func makeCertificate(in directory: String, name: String, names: [String]) throws -> (cert: String, key: String) {
        let cert = "\(directory)/\(name).pem"
        let key = "\(directory)/\(name).key"
        let san = names.map { "DNS:\($0)" }.joined(separator: ",") + ",IP:127.0.0.1"
        let result = try shell(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '\(key)' -out '\(cert)' "
                + "-days 2 -subj '/CN=\(names[0])' -addext 'subjectAltName=\(san)'")
        guard result.code == 0 else { throw HarnessError("openssl req failed: \(result.output)") }
        return (cert, key)
    }

    /// Runs `script` with /bin/sh, stdout and stderr together, killed after `seconds`.
    static func shell(_ script: String, seconds: Double = 20) throws -> (code: Int32, output: String) {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try ManagedProcess("/bin/sh", ["-c", script], logPath: directory + "/out")
        let code = try process.waitForExit(seconds: seconds)
        return (code, process.log)
    }

    /// One `openssl s_client` session: sends `request` (an HTTP/1.0 GET by default) and prints what it saw.
    static func sClient(port: Int, _ options: String = "", request: String = "GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n") throws -> String {
        // The sleep keeps stdin open until the response (and TLS 1.3 session tickets) have arrived.
        try shell("(printf '\(request)'; sleep 1) | openssl s_client -connect 127.0.0.1:\(port) \(options) 2>&1").output
    }

    /// The subject CN of the certificate the server presented, from s_client's output.
    static func subjectCN(in output: String) -> String? {
        for line in output.split(separator: "\n") where line.hasPrefix("subject=") {
            guard let range = line.range(of: "CN = ") ?? line.range(of: "CN=") else { continue }
            return String(line[range.upperBound...].prefix { $0 != "," && $0 != "/" }).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
