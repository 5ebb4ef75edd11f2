/// How this process runs keel-pool's commands on itself (workers, `_exec-as`, tune's pools): `keel-pool ARGS`, or
/// `keel pool ARGS` when the single keel binary hosts the pool. Set once at startup, before any thread starts.
public enum SelfInvocation {
    /// Arguments that come before a keel-pool command line when re-running this executable (`["pool"]` in keel).
    nonisolated(unsafe) public static var prefix: [String] = []
    /// The keel-pool command line this process was given (without the executable and the prefix).
    nonisolated(unsafe) public static var arguments: [String] = Array(CommandLine.arguments.dropFirst())
}
