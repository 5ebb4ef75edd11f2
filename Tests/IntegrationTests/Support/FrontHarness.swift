import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Harness {
    /// The keel binary built next to this test bundle.
    static var keelPath: String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("keel").path
    }

    /// How many descriptors `pid` has open.
    static func openFDCount(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// Resident memory of `pid` in KiB (VmRSS), or nil if it is gone.
    static func residentKiB(_ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        }
        return nil
    }
}

/// A keel started for one test on a free port. `config` may use {PORT}, {PORT2} (a second free port) and {DIR}; when
/// given it is written to DIR/keel.toml and passed with --config, otherwise `--listen 127.0.0.1:PORT` is added to
/// `arguments` (or `--tls-listen` with `tls`).
final class FrontUnderTest: @unchecked Sendable {
    let directory: String
    let port: Int
    let port2: Int
    let process: ManagedProcess
    let configPath: String?

    init(_ arguments: [String] = [], config: String? = nil, directory: String? = nil, tls: Bool = false, waitForListen: Bool = true) throws {
        self.directory = try directory ?? Harness.makeTempDirectory()
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        port = try Harness.freePort()
        port2 = try Harness.freePort()
        var all = arguments
        if let config {
            let path = self.directory + "/keel.toml"
            try Self.render(config, port: port, port2: port2, directory: self.directory).write(toFile: path, atomically: true, encoding: .utf8)
            configPath = path
            all = ["--config", path] + all
        } else {
            configPath = nil
            all += [tls ? "--tls-listen" : "--listen", "127.0.0.1:\(port)"]
        }
        _ = Harness.keelPoolPath  // sets KEEL_POOL_ALLOW_ROOT for pools keel starts
        setenv("KEEL_POOL", Harness.keelPoolPath, 1)
        process = try ManagedProcess(Harness.keelPath, all, logPath: self.directory + "/keel.log")
        if waitForListen { try waitUntilListening() }
    }

    static func render(_ template: String, port: Int, port2: Int = 0, directory: String) -> String {
        template.replacingOccurrences(of: "{PORT}", with: String(port)).replacingOccurrences(of: "{PORT2}", with: String(port2))
            .replacingOccurrences(of: "{DIR}", with: directory)
    }

    /// Rewrites the config file (for HUP tests).
    func rewriteConfig(_ config: String) throws {
        guard let configPath else { throw HarnessError("keel was started without a config file") }
        try Self.render(config, port: port, port2: port2, directory: directory).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func waitUntilListening() throws {
        var exited = false
        try Harness.waitUntil("keel to listen on \(port)", seconds: 30) {
            exited = !process.isRunning
            return exited || (try? TestSocket(tcpPort: port)) != nil
        }
        if exited { throw HarnessError("keel exited early:\n\(process.log)") }
    }

    var log: String { process.log }

    func get(_ target: String, headers: [(String, String)] = []) throws -> HTTPReply {
        try HTTPClient.request(port: port, target, headers: headers)
    }

    @discardableResult
    func stop(signal: Int32 = SIGTERM) throws -> Int32 { try process.stop(signal: signal, seconds: 40) }

    deinit {
        if process.isRunning { try? process.stop(signal: SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
