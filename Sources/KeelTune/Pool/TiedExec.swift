import CKeelSys
import KeelSystem

#if canImport(Glibc)
    import Glibc
#endif

/// The step between tune and each keel-pool it starts: the pool master gets TERM when tune ends, however it
/// ends (even by KILL, when tune cannot stop it), so no pool outlives a tune run. posix_spawn cannot set
/// PR_SET_PDEATHSIG, and the setting survives exec, so a small helper sets it and execs the master.
public enum TiedExec {
    /// The hidden keel-pool subcommand that runs `execTied`.
    public static let subcommand = "_tune-pool"

    /// The arguments that start `command` through the helper, tied to this process.
    static func arguments(executable: String, command: [String]) -> [String] {
        // `keel pool` re-runs itself with its prefix, both for this step and for the pool it execs.
        SelfInvocation.prefix + [subcommand, "--tune-parent", String(getpid()), "--", executable] + SelfInvocation.prefix
            + command
    }

    /// Sets the parent-death signal, checks the parent is still there (it may have died before the prctl), execs.
    public static func execTied(parent: pid_t, command: [String]) -> Int32 {
        guard let program = command.first else { return 2 }
        _ = keel_set_parent_death_signal(SIGTERM)
        if getppid() != parent { return 1 }
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        execv(program, argv)
        return 127
    }
}
