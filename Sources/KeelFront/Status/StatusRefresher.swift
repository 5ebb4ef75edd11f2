import KeelApp
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Once a second, off the request path: asks every pool for its stats document (all at once, each within a short
/// timeout) and publishes keel's counts with the pools' documents to the board the status page serves.
struct StatusRefresher: Sendable {
    /// A pool the page shows: a `[[pool]]` keel runs, or an outside one named in `[status.pools]`.
    struct Source: Sendable, Equatable {
        var name: String
        var address: FrontConfiguration.ServerAddress
    }

    let sources: [Source]
    let board: StatusBoard
    let group: any EventLoopGroup
    let server: FrontServer
    static let fetchTimeout = TimeAmount.milliseconds(800)

    /// Runs until the task is cancelled.
    func run() async {
        var last: (requests: Int, time: NIODeadline)?
        let started = NIODeadline.now()
        while !Task.isCancelled {
            let requests = server.requestsServed
            let now = NIODeadline.now()
            var perSecond = 0.0
            if let last, now > last.time {
                perSecond = Double(requests - last.requests) / (Double((now - last.time).nanoseconds) / 1e9)
            }
            last = (requests, now)
            let pools = await fetchAll()
            let uptime = Double((now - started).nanoseconds) / 1e9
            board.publish(
                Self.document(
                    connections: server.connectionCount, requests: requests, perSecond: perSecond, uptime: uptime,
                    eventLoops: server.configuration.eventLoops, pools: pools,
                    http2: (server.http2Counters.connectionsOpen.load(ordering: .relaxed), server.http2Counters.streamsOpened.load(ordering: .relaxed))))
            try? await Task.sleep(nanoseconds: 1_000_000_000)
        }
    }

    private func fetchAll() async -> [(Source, Result<String, PoolStatsClient.Failure>)] {
        await withTaskGroup(of: (Int, Result<String, PoolStatsClient.Failure>).self) { tasks in
            for (index, source) in sources.enumerated() {
                tasks.addTask {
                    (index, await PoolStatsClient.fetch(source.address, group: group, timeout: Self.fetchTimeout))
                }
            }
            var results = [Result<String, PoolStatsClient.Failure>?](repeating: nil, count: sources.count)
            for await (index, result) in tasks { results[index] = result }
            return sources.indices.map { (sources[$0], results[$0] ?? .failure(.init(description: "not fetched"))) }
        }
    }

    /// `{"keel": {...}, "pools": [{"name", "stats_address", "error", "stats"}]}`; each pool's document is embedded as
    /// keel-pool wrote it, so fields keel does not know yet reach the page unchanged.
    static func document(
        connections: Int, requests: Int, perSecond: Double, uptime: Double, eventLoops: Int,
        pools: [(Source, Result<String, PoolStatsClient.Failure>)], http2: (connections: Int, streams: Int) = (0, 0)
    ) -> String {
        let rate = (perSecond * 10).rounded() / 10
        var text = "{\"keel\": {\"pid\": \(getpid()), \"connections\": \(connections), \"requests\": \(requests), "
        text += "\"http2_connections\": \(http2.connections), \"http2_streams\": \(http2.streams), "
        text +=
            "\"requests_per_s\": \(rate), \"uptime_s\": \(Int(uptime)), \"event_loops\": \(eventLoops)},\n\"pools\": ["
        for (index, (source, result)) in pools.enumerated() {
            if index > 0 { text += ",\n" }
            text +=
                "{\"name\": \(JSON.quote(source.name)), \"stats_address\": \(JSON.quote(source.address.description)), "
            switch result {
            case .success(let stats): text += "\"error\": null, \"stats\": \(stats)}"
            case .failure(let failure): text += "\"error\": \(JSON.quote(failure.description)), \"stats\": null}"
            }
        }
        return text + "]}\n"
    }
}
