import CKeelSys

/// What `keel version` says of the build itself.
public enum BuildInfo {
    /// keel's and keel-pool's release (one number for the bundle).
    public static let version = "0.3.0"

    /// The commit deploy/build-dist.sh built from; "unknown" for `swift build` (SwiftPM caches the manifest, so a
    /// commit computed there would go stale).
    public static var gitCommit: String { String(cString: keel_git_commit()) }

    /// The compiler that built this binary, to the minor version.
    public static var swiftVersion: String {
        #if compiler(>=6.4)
        "6.4 or later"
        #elseif compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6.1 or earlier"
        #endif
    }
}
