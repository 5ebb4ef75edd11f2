import ArgumentParser
import KeelPool

#if canImport(Glibc)
import Glibc
#endif

/// Started by the master for a hosted WSGI worker under `--uid`/`--gid`: drops privileges, then execs the
/// interpreter with the worker's fds and arguments as they are. Not for direct use.
public struct ExecAsCommand: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(commandName: "_exec-as", shouldDisplay: false)

    // Not --uid/--gid: those are the root command's, which would take them.
    @Option(name: .customLong("to-uid")) var uid: uid_t?
    @Option(name: .customLong("to-gid")) var gid: gid_t?
    @Argument(parsing: .postTerminator) var command: [String]

    public func run() throws {
        guard let program = command.first else { throw ValidationError("_exec-as: nothing to run") }
        do { try Privileges.drop(uid: uid, gid: gid) } catch {
            throw ValidationError(error.description)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        execv(program, argv)
        throw ValidationError("cannot run \(program): \(String(cString: strerror(errno)))")
    }
}
