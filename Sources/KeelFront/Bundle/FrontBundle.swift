import KeelTLS
import Logging
import NIOCore
import NIOPosix
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// keel's whole life, in its one declared order: pools up → listeners bound → serve (HUP reloads, USR1 reopens
/// logs) → on TERM stop accepting and drain → pools stopped → exit. INT and QUIT skip the drain.
public enum FrontBundle {
    public struct Logs: Sendable {
        public var accessLog: AccessLog?
        public var errorSink: LogSink?
    }

    /// Opens the logs a configuration names and points the error log at its sink.
    public static func openLogs(_ configuration: FrontConfiguration) throws -> Logs {
        let errorSink = try LogSink(path: configuration.logs.errorLog, dashMeans: .standardError)
        let accessLog = try configuration.logs.accessLog.map { AccessLog(sink: try LogSink(path: $0, dashMeans: .standardOutput)) }
        return Logs(accessLog: accessLog, errorSink: errorSink)
    }

    /// Runs until a stop signal; returns the exit code. `reload` builds a fresh configuration for HUP (nil: nothing
    /// to reload from).
    public static func run(
        _ configuration: FrontConfiguration, tls: TLSServerContext?, reload: (@Sendable () throws -> FrontConfiguration)?,
        announce: @Sendable ([SocketAddress]) -> Void = { _ in }
    ) async throws -> Int32 {
        var logs = try openLogs(configuration)
        FrontLog.configure(sink: logs.errorSink, level: Logger.Level(configName: configuration.logs.level) ?? .info)
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sigquit, .sighup, .sigusr1)

        let statsSources: PoolStatsSources
        do {
            statsSources = try PoolStatsSources(configuration)
        } catch {
            FrontLog.error("\(error)")
            return 1
        }
        defer { statsSources.removeDirectory() }
        let pools = PoolSupervisor(pools: statsSources.pools)
        if !pools.isEmpty {
            do {
                try await pools.start()
            } catch {
                FrontLog.error("\(error)")
                await pools.stop(grace: 5)
                return 1
            }
        }

        // Started only now: during startup a pool's exit is start()'s to see (and fail on), not a restart.
        let reaper = Task {
            // Reaps every child (PID 1's duty in a container) and restarts pools that died.
            while !Task.isCancelled {
                pools.tick()
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        defer { reaper.cancel() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoops)
        logCertificates(tls)
        let server = FrontServer(
            configuration: configuration, tls: tls, accessLog: logs.accessLog, group: group,
            metrics: configuration.metrics == nil ? nil : FrontMetrics())
        var metricsChannel: (any Channel)?
        do {
            // /metrics first: once the HTTP listeners accept, a scraper that waited for them finds it too.
            if let metrics = configuration.metrics {
                do {
                    metricsChannel = try await MetricsServer.start(metrics.listener, server: server, group: group)
                } catch {
                    throw FrontServer.StartError(description: "cannot listen on \(metrics.listener.address) for metrics.listen: \(error) (is another server using that port?)")
                }
                FrontLog.notice("metrics on http://\(metricsChannel?.localAddress?.hostAndPort ?? metrics.listener.address)/metrics")
            }
            try await server.start()
        } catch {
            FrontLog.error("\(error)")
            try? await metricsChannel?.close()
            await server.shutdown(grace: .zero)
            await pools.stop(grace: 5)
            try? await group.shutdownGracefully()
            return 1
        }
        var refresher: Task<Void, Never>?
        if let board = server.statusBoard, let status = configuration.status {
            let statusRefresher = StatusRefresher(sources: statsSources.sources, board: board, group: group, server: server)
            refresher = Task { await statusRefresher.run() }
            FrontLog.notice("status page at \(status.path) (\(statsSources.sources.count) pools)")
        }
        defer { refresher?.cancel() }  // on the early returns; the stop path ends it before the loops
        let inherited = configuration.listeners.contains { $0.inheritedFD != nil } ? " (sockets inherited from systemd among them)" : ""
        FrontLog.notice("keel listening on \(server.boundAddresses.map(\.hostAndPort).joined(separator: ", "))\(inherited) with \(configuration.eventLoops) event loops")
        announce(server.boundAddresses)
        // Stopped (and awaited) before the loops stop: a flush is a task on each loop.
        let flusher = Task {
            while (try? await Task.sleep(nanoseconds: 1_000_000_000)) != nil {
                await server.flushAccessLogs()
            }
        }
        defer { flusher.cancel() }

        var grace = configuration.limits.gracefulTimeout
        for await signal in signals {
            switch signal {
            case .sighup:
                guard let reload else {
                    FrontLog.warning("HUP ignored: keel was started without --config, so there is nothing to reload")
                    continue
                }
                do {
                    let fresh = try reload()
                    // Certificates load before anything is swapped: a bad file keeps the old context in force.
                    let freshTLS = try FrontTLS.context(for: fresh)
                    let freshLogs = try openLogs(fresh)
                    for note in server.reload(fresh, tls: freshTLS, accessLog: freshLogs.accessLog) { FrontLog.warning("reload: \(note)") }
                    logCertificates(freshTLS)
                    logs = freshLogs
                    FrontLog.configure(sink: logs.errorSink, level: Logger.Level(configName: fresh.logs.level) ?? .info)
                    if fresh.pools != configuration.pools { FrontLog.warning("reload: [[pool]] changes need a restart of keel") }
                    grace = fresh.limits.gracefulTimeout
                    FrontLog.notice("configuration reloaded: \(fresh.routes.count) routes, \(fresh.upstreams.count) upstreams")
                } catch {
                    FrontLog.error("reload failed, the old configuration stays in force: \(error)")
                }
            case .sigusr1:
                do {
                    await server.flushAccessLogs()
                    try logs.accessLog?.reopen()
                    try logs.errorSink?.reopen()
                    FrontLog.notice("logs reopened")
                } catch {
                    FrontLog.error("cannot reopen logs: \(error)")
                }
            case .sigterm:
                FrontLog.notice("TERM: no new connections; draining requests in flight (up to \(grace.prettySeconds))")
                flusher.cancel()
                await flusher.value
                await stopObservers(refresher, metricsChannel)
                await stop(server: server, pools: pools, group: group, grace: grace)
                return 0
            default:
                FrontLog.notice("\(signal): stopping now")
                flusher.cancel()
                await flusher.value
                await stopObservers(refresher, metricsChannel)
                await stop(server: server, pools: pools, group: group, grace: .milliseconds(100))
                return 0
            }
        }
        return 0
    }

    /// One line per certificate (which names it serves), and the warnings (expired, not yet valid).
    private static func logCertificates(_ tls: TLSServerContext?) {
        guard let tls else { return }
        for (index, names) in tls.certificateNames.enumerated() {
            let path = tls.configuration.certificates[index].chainPath
            FrontLog.info("TLS certificate \(path) for \(names.isEmpty ? "(no names)" : names.joined(separator: ", "))\(index == 0 ? " (default)" : "")")
        }
        for warning in tls.warnings { FrontLog.warning("TLS: \(warning)") }
    }

    /// The status refresh and the metrics listener end before the event loops they use.
    private static func stopObservers(_ refresher: Task<Void, Never>?, _ metricsChannel: (any Channel)?) async {
        refresher?.cancel()
        await refresher?.value
        try? await metricsChannel?.close()
    }

    private static func stop(server: FrontServer, pools: PoolSupervisor, group: MultiThreadedEventLoopGroup, grace: TimeAmount) async {
        await server.shutdown(grace: grace)
        await pools.stop(grace: Double(grace.nanoseconds) / 1e9 + 5)
        try? await group.shutdownGracefully()
        // Lines logged while the last connections closed (499s) go out before exit.
        server.flushAccessLogsAfterLoopsStopped()
        FrontLog.notice("keel stopped")
    }
}

extension SocketAddress {
    /// "127.0.0.1:8080", "[::1]:8080": how users write addresses.
    public var hostAndPort: String {
        guard let ip = ipAddress, let port else { return description }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
