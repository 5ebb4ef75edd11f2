import ArgumentParser
import KeelApp
import KeelPool
import KeelPoolCLI
import KeelSystem

#if canImport(Glibc)
import Glibc
#endif

/// keel-pool's command line: the `keel-pool` executable, and `keel pool` in the single keel binary.
public struct KeelPoolCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keel-pool",
        abstract: "Keel's application server: a master supervising worker processes × threads, speaking uwsgi and HTTP.",
        discussion: """
            Signals: TERM = graceful shutdown (in-flight requests finish), INT/QUIT = immediate shutdown,
            HUP = graceful reload (new workers first), TTIN/TTOU = one worker more/fewer, USR1 = reopen --logto.
            Examples:
              keel-pool --http-socket 127.0.0.1:8000 --wsgi-file app.py --processes 2 --threads 4
              keel-pool --socket /run/app.sock --chdir /srv/site --wsgi mysite.wsgi -H /srv/venv
              keel-pool --http-socket 127.0.0.1:8000 --app hello
              keel-pool --socket /run/app.sock --chmod-socket 660 --processes 4 --threads 2 --app env
              keel-pool tune --wsgi-file app.py --url '/api?id=1' --budget 2m   (finds --processes and --threads)
            """,
        version: "keel-pool \(BuildInfo.version)\ncommit:  \(BuildInfo.gitCommit)\nswift:   \(BuildInfo.swiftVersion)\npython:  \(LinkedPython.version) (embedded)",
        subcommands: [Check.self, Stats.self, Tune.self, TunePoolCommand.self, WorkerCommand.self, ExecAsCommand.self])

    @OptionGroup var options: PoolOptions

    public init() {}

    public func run() throws {
        // Started by keel: TERM (a graceful stop) when keel dies, even by KILL.
        if case .parentGone(let parent) = ParentTie.tieFromEnvironment() {
            throw ValidationError("the process that started keel-pool (pid \(parent)) is gone: not starting")
        }
        let arguments = SelfInvocation.arguments
        // systemd's sockets, taken (and the variables unset) before any worker is spawned.
        let inherited: [InheritedSocket]
        do {
            inherited = try SocketActivation.take()
        } catch {
            throw ValidationError(error.description)
        }
        let configuration = try options.validated(arguments: arguments, inherited: inherited)
        let code = PoolMaster(configuration: configuration).run()
        if code != 0 { throw ExitCode(code) }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the flags and that every socket can be bound, without starting anything.")

        @OptionGroup var options: PoolOptions

        func run() throws {
            let configuration = try options.validated(arguments: [])
            let sockets = configuration.uwsgiSockets.map { ($0, WorkerConfiguration.Wire.uwsgi, "--socket") }
                + configuration.httpSockets.map { ($0, WorkerConfiguration.Wire.http, "--http-socket") }
            for (address, wire, flag) in sockets {
                do {
                    let socket = try ListenSocket.bind(address, wire: wire, backlog: 1, chmod: nil, flag: flag)
                    socket.close()
                } catch {
                    throw ValidationError(error.description)
                }
            }
            print(
                "keel-pool check: OK: app \(configuration.appName), \(configuration.processes) processes × "
                    + "\(configuration.threads) threads on " + sockets.map { "\($0.0)" }.joined(separator: ", ")
                    + (configuration.pythonHost.map { ", Python: \($0)" } ?? ""))
        }
    }

}
