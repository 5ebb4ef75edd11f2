import Foundation
import Testing

/// deploy/k8s/ checked offline by deploy/k8s/validate.sh (kubectl kustomize, keel check on the embedded configs,
/// the drain rules), and the checker itself shown to fail on broken copies.
@Suite("Kubernetes manifests", .serialized, .timeLimit(.minutes(2)))
struct DeployManifestTests {
    static let k8s = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/k8s").standardizedFileURL.path

    static func validate(_ directory: String = k8s) throws -> (code: Int32, output: String) {
        try TLSTools.shell("KEEL=\(Harness.keelPath) \(k8s)/validate.sh \(directory) 2>&1", seconds: 90)
    }

    @Test func bothVariantsValidate() throws {
        let run = try Self.validate()
        #expect(run.code == 0, "\(run.output)")
        #expect(run.output.contains("bundle: OK") && run.output.contains("split: OK"), "\(run.output)")
    }

    /// A grace period under the drain, a missing probe and a config keel refuses are each caught with their line.
    @Test func brokenCopiesFailWithTheirReason() throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try TLSTools.shell("cp -r \(Self.k8s)/bundle \(Self.k8s)/split \(directory)/")
        let bundle = directory + "/bundle/keel.yaml"
        var manifest = try String(contentsOfFile: bundle, encoding: .utf8)
        manifest = manifest.replacingOccurrences(of: "terminationGracePeriodSeconds: 40", with: "terminationGracePeriodSeconds: 20")
        try manifest.write(toFile: bundle, atomically: true, encoding: .utf8)
        let pool = directory + "/split/keel-pool.yaml"
        let withoutLiveness = try String(contentsOfFile: pool, encoding: .utf8)
            .replacingOccurrences(of: "livenessProbe:", with: "xLivenessProbe:")
        try withoutLiveness.write(toFile: pool, atomically: true, encoding: .utf8)
        let config = directory + "/split/keel.toml"
        try (try String(contentsOfFile: config, encoding: .utf8)).replacingOccurrences(of: "uwsgi = \"app\"", with: "uwsgi = \"nope\"")
            .write(toFile: config, atomically: true, encoding: .utf8)

        let run = try Self.validate(directory)
        #expect(run.code == 1, "\(run.output)")
        #expect(run.output.contains("terminationGracePeriodSeconds 20 must exceed graceful_timeout 25 + preStop 5"), "\(run.output)")
        #expect(run.output.contains("container keel-pool: add a livenessProbe"), "\(run.output)")
        #expect(run.output.contains("keel check:") && run.output.contains("nope"), "\(run.output)")
    }
}
