import ArgumentParser
import KeelApp
import KeelPool
import KeelWSGI

#if canImport(Glibc)
import Glibc
#endif

@main
struct KeelPoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
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
            """,
        subcommands: [Check.self, Stats.self, Worker.self])

    @OptionGroup var options: PoolOptions

    func run() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let configuration = try options.validated(workerArguments: ["_worker"] + arguments)
        let code = PoolMaster(configuration: configuration).run()
        if code != 0 { throw ExitCode(code) }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the flags and that every socket can be bound, without starting anything.")

        @OptionGroup var options: PoolOptions

        func run() throws {
            let configuration = try options.validated(workerArguments: [])
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
                    + "\(configuration.threads) threads on " + sockets.map { "\($0.0)" }.joined(separator: ", "))
        }
    }

    /// Started by the master with posix_spawn; not for direct use.
    struct Worker: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "_worker", shouldDisplay: false)

        @OptionGroup var options: PoolOptions
        @Option(name: .customLong("worker-id")) var workerID: Int
        @Option(name: .customLong("status-fd")) var statusFD: Int32?
        @Option(name: .customLong("master-pid")) var masterPID: Int32?
        @Option(name: .customLong("listener-fd")) var listenerFDs: [String] = []
        @Option(name: .customLong("scoreboard")) var scoreboard: String?

        func run() throws {
            signal(SIGPIPE, SIG_IGN)
            do {
                var wsgi = try options.wsgiConfiguration()
                if let statusFD { wsgi?.autoreloadReport = { WorkerRuntime.reportChangedSource($0, statusFD: statusFD) } }
                let loadApp: (() throws -> any Handler)? = wsgi.map { wsgi in { try WSGIAppLoader.load(wsgi) } }
                WorkerRuntime.run(try configuration(), loadApp: loadApp)
            } catch {
                WorkerRuntime.startupFailed("\(error)", statusFD: statusFD)
            }
        }

        func configuration() throws -> WorkerConfiguration {
            let listeners = try listenerFDs.map { text -> WorkerConfiguration.InheritedListener in
                let parts = text.split(separator: ":")
                guard parts.count == 2, let wire = WorkerConfiguration.Wire(rawValue: String(parts[0])),
                    let fd = Int32(parts[1])
                else { throw ValidationError("--listener-fd \(text): expected uwsgi:FD or http:FD") }
                return WorkerConfiguration.InheritedListener(fd: fd, proto: wire)
            }
            var configuration = WorkerConfiguration(
                id: workerID, listeners: listeners, threads: options.threads, handler: try options.handler(),
                limitPost: options.limitPost, socketTimeout: options.socketTimeout, statusFD: statusFD,
                masterPID: masterPID)
            configuration.maxRequests = options.jitteredMaxRequests
            configuration.logTo = options.logTo
            configuration.dropTo = try options.identity()
            if let scoreboard {
                let parts = scoreboard.split(separator: ":").compactMap { Int($0) }
                guard parts.count == 4 else {
                    throw ValidationError("--scoreboard \(scoreboard): expected FD:RECORD:CAPACITY:ROWS")
                }
                do {
                    let board = try Scoreboard.map(fd: Int32(parts[0]), capacity: parts[2], threads: parts[3])
                    configuration.scoreboard = (board, parts[1])
                } catch {
                    throw ValidationError(error.description)
                }
            }
            return configuration
        }
    }
}
