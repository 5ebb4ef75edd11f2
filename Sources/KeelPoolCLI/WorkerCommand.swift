import ArgumentParser
import KeelApp
import KeelPool
import KeelWSGI

#if canImport(Glibc)
import Glibc
#endif

/// Started by the master with posix_spawn; not for direct use.
public struct WorkerCommand: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(commandName: "_worker", shouldDisplay: false)

    @OptionGroup var options: PoolOptions
    @Option(name: .customLong("worker-id")) var workerID: Int
    @Option(name: .customLong("status-fd")) var statusFD: Int32?
    @Option(name: .customLong("master-pid")) var masterPID: Int32?
    @Option(name: .customLong("listener-fd")) var listenerFDs: [String] = []
    @Option(name: .customLong("scoreboard")) var scoreboard: String?

    /// In keel-pool's own process (built-in apps, or WSGI on the embedded libpython) or, for WSGI apps, inside the
    /// app's interpreter (`KeelPoolWorker`'s `run`, which holds the GIL when it calls this). Never returns.
    public func run() throws {
        signal(SIGPIPE, SIG_IGN)
        do {
            var wsgi = try options.wsgiConfiguration()
            if let statusFD { wsgi?.autoreloadReport = { WorkerRuntime.reportChangedSource($0, statusFD: statusFD) } }
            let loadApp: (() throws -> LoadedApp)? = wsgi.map { wsgi in { try WSGIAppLoader.loadApp(wsgi) } }
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
        if let size = options.wsMaxSize { configuration.webSocketMaxSize = size }
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
