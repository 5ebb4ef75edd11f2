import CoreMetrics
import KeelMetrics

/// Why a worker was replaced (the `reason` label of `keel_pool_respawns_total`).
public enum RespawnReason: String, Sendable, CaseIterable {
    case maxRequests = "max_requests"
    case lifetime
    case rss
    case reload
    case harakiri
    /// It died on its own (a crash or an exit the master did not ask for).
    case died
}

/// `--metrics`: the master's Prometheus metrics, kept from the scoreboard and the master's own events.
/// The master is one thread, so these are plain fields; the handles are swift-metrics', exposed by swift-prometheus.
final class PoolMetrics {
    static let descriptions: [String: DescribedPrometheusFactory.Description] = [
        "keel_pool_requests_total": .init(help: "Requests answered, per worker id (a recycled worker's successor continues its series)."),
        "keel_pool_busy_threads": .init(help: "Threads running a request now, per worker id."),
        "keel_pool_in_flight_requests": .init(help: "Requests in flight now, per worker id (async workers: up to --worker-connections)."),
        "keel_pool_worker_rss_bytes": .init(help: "Resident memory per worker id, at the master's last once-a-second check."),
        "keel_pool_respawns_total": .init(help: "Workers replaced, by reason."),
        "keel_pool_harakiri_total": .init(help: "Requests that ran over --harakiri (their worker was replaced)."),
        "keel_pool_listen_queue": .init(help: "Connections waiting in a listening socket's accept queue."),
        "keel_pool_workers": .init(help: "Worker processes alive (starting, serving or draining)."),
        "keel_pool_cheaper_target": .init(help: "How many workers --cheaper wants now (--processes without --cheaper)."),
    ]

    let factory: DescribedPrometheusFactory
    private var requestsSeen: [Int32: Int64] = [:]
    private var requests: [Int: Counter] = [:]
    private var perWorkerGauges: [Int: (busy: Gauge, inFlight: Gauge, rss: Gauge)] = [:]
    private var queues: [String: Gauge] = [:]
    private let respawns: [RespawnReason: Counter]
    private let harakiri: Counter
    private let workers: Gauge
    private let cheaperTarget: Gauge

    init() {
        let factory = DescribedPrometheusFactory(descriptions: Self.descriptions)
        self.factory = factory
        respawns = Dictionary(
            uniqueKeysWithValues: RespawnReason.allCases.map {
                ($0, Counter(label: "keel_pool_respawns_total", dimensions: [("reason", $0.rawValue)], factory: factory))
            })
        harakiri = Counter(label: "keel_pool_harakiri_total", factory: factory)
        workers = Gauge(label: "keel_pool_workers", factory: factory)
        cheaperTarget = Gauge(label: "keel_pool_cheaper_target", factory: factory)
    }

    func respawned(_ reason: RespawnReason) { respawns[reason]?.increment() }
    func harakiriFired() { harakiri.increment() }

    /// Adds what a worker answered since the last look (its scoreboard counters only grow while it lives).
    func observeRequests(workerID: Int, pid: Int32, total: Int64) {
        let delta = total - (requestsSeen[pid] ?? 0)
        requestsSeen[pid] = total
        guard delta > 0 else { return }
        counter(workerID).increment(by: delta)
    }

    /// The worker is gone: its last count was taken by `observeRequests`.
    func forget(pid: Int32) { requestsSeen[pid] = nil }

    struct WorkerSample {
        var id: Int
        var busy: Int
        var rssBytes: Int64
    }

    /// Sets the gauges from one look at the pool; ids no longer present lose their series.
    func update(workers samples: [WorkerSample], isAsync: Bool, alive: Int, target: Int, queues queueLengths: [(String, Int?)]) {
        var present = Set<Int>()
        for sample in samples {
            let gauges = gauges(sample.id)
            present.insert(sample.id)
            gauges.busy.record(isAsync ? 0 : sample.busy)
            gauges.inFlight.record(sample.busy)
            gauges.rss.record(sample.rssBytes)
        }
        for (id, gauges) in perWorkerGauges where !present.contains(id) {
            gauges.busy.destroy()
            gauges.inFlight.destroy()
            gauges.rss.destroy()
            perWorkerGauges[id] = nil
        }
        workers.record(alive)
        cheaperTarget.record(target)
        for (name, length) in queueLengths {
            let gauge = queues[name] ?? Gauge(label: "keel_pool_listen_queue", dimensions: [("socket", name)], factory: factory)
            queues[name] = gauge
            gauge.record(length ?? 0)
        }
    }

    private func counter(_ id: Int) -> Counter {
        if let counter = requests[id] { return counter }
        let counter = Counter(label: "keel_pool_requests_total", dimensions: [("worker", String(id))], factory: factory)
        requests[id] = counter
        return counter
    }

    private func gauges(_ id: Int) -> (busy: Gauge, inFlight: Gauge, rss: Gauge) {
        if let gauges = perWorkerGauges[id] { return gauges }
        let labels = [("worker", String(id))]
        let made = (
            Gauge(label: "keel_pool_busy_threads", dimensions: labels, factory: factory),
            Gauge(label: "keel_pool_in_flight_requests", dimensions: labels, factory: factory),
            Gauge(label: "keel_pool_worker_rss_bytes", dimensions: labels, factory: factory)
        )
        perWorkerGauges[id] = made
        return made
    }
}
