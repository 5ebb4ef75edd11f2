import CKeelSys

#if canImport(Glibc)
import Glibc
#endif

/// A child that must not outlive the process that started it (keel's pools): the parent puts its pid in the child's
/// environment, and the child, first thing, asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG) —
/// posix_spawn cannot set that itself. The setting lasts until exec and is not inherited by the child's own children.
public enum ParentTie {
    public static let variable = "KEEL_PARENT_PID"

    /// The entry a parent passes to the child (`ProcessSpawner.spawn(extraEnvironment:)`).
    public static var environmentEntry: String { "\(variable)=\(getpid())" }

    public enum Outcome: Equatable {
        /// No tie was asked for.
        case untied
        /// SIGTERM comes when the parent dies.
        case tied(parent: pid_t)
        /// The parent died before the tie was made: the child should stop now.
        case parentGone(parent: pid_t)
    }

    /// No signal when the parent dies (tests, and a child that hands the tie on by re-exec).
    public static func untie() {
        _ = keel_set_parent_death_signal(0)
    }

    /// Reads and removes the variable (so the child's own children are not tied to the wrong parent) and ties.
    public static func tieFromEnvironment() -> Outcome {
        guard let raw = getenv(variable) else { return .untied }
        let text = String(cString: raw)
        unsetenv(variable)
        guard let parent = pid_t(text), parent > 1 else { return .untied }
        _ = keel_set_parent_death_signal(SIGTERM)
        // A parent that died between spawn and prctl sent nothing: we were re-parented already.
        return getppid() == parent ? .tied(parent: parent) : .parentGone(parent: parent)
    }
}
