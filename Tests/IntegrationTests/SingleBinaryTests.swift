import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The keel binary as shipped: alone in an empty directory, with an empty environment and nothing on PATH, it runs
/// the demo and a [[pool]] bundle and leaves no process after TERM. `KEEL_DIST_BINARY` points it at the binary of
/// deploy/build-dist.sh's tarball (static Swift runtime); otherwise the built debug keel.
@Suite("the single keel binary", .serialized, .timeLimit(.minutes(3)))
struct SingleBinaryTests {
    /// A copy of the binary in a fresh directory, and that directory.
    static func alone() throws -> (binary: String, directory: String) {
        let source = ProcessInfo.processInfo.environment["KEEL_DIST_BINARY"] ?? Harness.keelPath
        let directory = try Harness.makeTempDirectory()
        try FileManager.default.copyItem(atPath: source, toPath: directory + "/keel")
        return (directory + "/keel", directory)
    }

    /// Nothing inherited: no PATH to find keel-pool or python3 on, no HOME, only root's permission for the pools.
    static let emptyEnvironment = ["/usr/bin/env", "-i", "PATH=/nonexistent", "KEEL_POOL_ALLOW_ROOT=1"]

    @Test func versionNamesTheBuildAndTheLibrariesItRunsOn() throws {
        let (binary, directory) = try Self.alone()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for command in ["version", "--version"] {
            let run = try TLSTools.shell("\(Self.emptyEnvironment.joined(separator: " ")) \(binary) \(command)", seconds: 20)
            let lines = run.output.split(separator: "\n").map(String.init)
            #expect(run.code == 0 && lines.first?.hasPrefix("keel ") == true, "\(run.output)")
            for (field, start) in [("commit:", ""), ("swift:", "6."), ("openssl:", "OpenSSL 3."), ("zlib:", "1."), ("python:", "3.")] {
                let value = lines.first { $0.hasPrefix(field) }.map { $0.dropFirst(field.count).trimmingCharacters(in: .whitespaces) }
                #expect(value?.hasPrefix(start) == true && value?.isEmpty == false, "\(command): \(field) in\n\(run.output)")
            }
        }
        let pool = try TLSTools.shell("\(binary) pool --version", seconds: 20)
        #expect(pool.output.hasPrefix("keel-pool "), "\(pool.output)")
    }

    /// The demo (its WSGI app on the embedded Python, the Swift hello pool) on a socket passed in, so no fixed port.
    @Test func theDemoRunsFromTheBinaryAloneAndTermLeavesNothing() throws {
        let (binary, directory) = try Self.alone()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try Harness.freePort()
        let demo = try SocketActivationTests.Activated(
            ["-l", "127.0.0.1:\(port)", binary], prefix: Self.emptyEnvironment, path: nil, directory: directory, log: "demo.log")
        try Harness.waitUntil("the demo to serve", seconds: 30) { (try? HTTPClient.get(port: port, "/").text) == "Hello world!\n" }
        #expect(try HTTPClient.get(port: port, "/swift/").text == "Hello world!\n", "\(demo.log)")
        let tree = FrontBundleTests.tree(demo.pid)
        #expect(tree.count >= 5, "two pool masters and their workers: \(tree)\n\(demo.log)")
        #expect(try demo.stop() == 0, "\(demo.log)")
        try Harness.waitUntil("every demo process to exit", seconds: 20) { tree.allSatisfy { !Harness.processExists($0) } }
    }

    @Test func aPoolBundleRunsFromTheBinaryAloneAndTermLeavesNothing() throws {
        let (binary, directory) = try Self.alone()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try Harness.freePort()
        try FrontUnderTest.render(FrontBundleTests.bundleConfig(), port: port, directory: directory)
            .write(toFile: directory + "/keel.toml", atomically: true, encoding: .utf8)
        let keel = try ManagedProcess(
            Self.emptyEnvironment[0], Array(Self.emptyEnvironment.dropFirst()) + [binary, "--config", directory + "/keel.toml"],
            logPath: directory + "/keel.log")
        try Harness.waitUntil("keel to serve through its own pool", seconds: 30) {
            (try? HTTPClient.get(port: port, "/").text) == "Hello world!\n"
        }
        let tree = FrontBundleTests.tree(keel.pid)
        #expect(tree.count == 3, "a pool master and two workers, all `keel pool`: \(tree)\n\(keel.log)")
        #expect(try keel.stop(signal: SIGTERM) == 0, "\(keel.log)")
        try Harness.waitUntil("every process of the bundle to exit", seconds: 20) { tree.allSatisfy { !Harness.processExists($0) } }
    }
}
