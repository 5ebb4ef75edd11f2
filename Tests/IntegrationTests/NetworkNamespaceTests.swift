import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// keel and two keel-pool hosts in network namespaces over TCP uwsgi (deploy/netns-test.sh): balance, a host lost by
/// a cut link and by a stop under load with nothing dropped, passive health out and back, a HUP under load, a hung
/// host taken out after one read_timeout. Needs
/// root (it makes namespaces and veth pairs), which CI here has.
@Suite("across network namespaces", .serialized, .timeLimit(.minutes(3)), .enabled(if: getuid() == 0))
struct NetworkNamespaceTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/netns-test.sh").standardizedFileURL.path

    @Test func twoPoolHostsLoseNothingWhenOneGoesDownOrReloads() throws {
        let run = try TLSTools.shell(
            "KEEL=\(Harness.keelPath) KEEL_POOL=\(Harness.keelPoolPath) \(Self.script) 2>&1", seconds: 150)
        #expect(run.code == 0, "\(run.output)")
        let passed = run.output.split(separator: "\n").filter { $0.hasPrefix("PASS ") }
        var checks = ["PASS 1 balance:", "PASS 3 HUP of pool2 under load:", "PASS 4 pool1 hung:"]
        for how in ["link", "stop"] {
            checks += [
                "PASS 2 pool1 down (\(how)) under load:", "PASS 2 POSTs beside it (\(how)):",
                "PASS 2 passive health (\(how)):", "PASS 2 pool1 back (\(how)):",
            ]
        }
        for check in checks {
            #expect(passed.contains { $0.hasPrefix(check) }, "\(check) missing:\n\(run.output)")
        }
        #expect(!run.output.contains("FAIL "), "\(run.output)")
    }
}
