#if canImport(Glibc)
import Glibc
#endif

/// `--uid` / `--gid`, as uWSGI takes them: a name or a number.
public enum Privileges {
    public static func userID(_ text: String) throws(PoolError) -> uid_t {
        if let number = uid_t(text) { return number }
        guard let entry = getpwnam(text) else { throw PoolError("--uid \(text): no such user on this system") }
        return entry.pointee.pw_uid
    }

    public static func groupID(_ text: String) throws(PoolError) -> gid_t {
        if let number = gid_t(text) { return number }
        guard let entry = getgrnam(text) else { throw PoolError("--gid \(text): no such group on this system") }
        return entry.pointee.gr_gid
    }

    /// Switches this process to `gid` then `uid` (group first: after setuid it may no longer change groups),
    /// dropping supplementary groups; throws with the fix if the system refuses.
    public static func drop(uid: uid_t?, gid given: gid_t?) throws(PoolError) {
        // --uid alone: the user's own group, and none of root's (gid 0 and its supplementary groups would stay).
        let gid = given ?? uid.flatMap { getpwuid($0)?.pointee.pw_gid }
        // Already done (a hosted WSGI worker drops before its interpreter starts): only root may call setgroups.
        if geteuid() != 0, uid.map({ $0 == getuid() }) ?? true, gid.map({ $0 == getgid() }) ?? true { return }
        if let gid {
            var groups = [gid]
            guard setgroups(1, &groups) == 0, setgid(gid) == 0 else {
                throw .errno("--gid \(gid): cannot switch group (start keel-pool as root to use --uid/--gid)", errno)
            }
        }
        if let uid {
            guard setuid(uid) == 0 else {
                throw .errno("--uid \(uid): cannot switch user (start keel-pool as root to use --uid/--gid)", errno)
            }
        }
    }
}
