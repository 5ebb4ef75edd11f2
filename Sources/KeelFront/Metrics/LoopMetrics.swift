import CoreMetrics
import NIOHTTP1
import Synchronization

/// One event loop's side of the metrics, touched only on its loop: histogram samples wait here and reach the shared
/// histograms in batches (swift-prometheus's histograms take a lock per sample, which a request must not), and the
/// count of requests this loop finished feeds the status page's requests/s.
final class LoopMetrics: @unchecked Sendable {
    /// Written by this loop only (relaxed, uncontended); read by the status refresh on another thread.
    let requestsServed = Atomic<Int>(0)
    private var samples: [(CoreMetrics.Timer, Int64)] = []
    static let batch = 256

    init() {
        samples.reserveCapacity(Self.batch)
    }

    /// Every finished request, metrics on or off (the status page's requests/s).
    func countRequest() {
        requestsServed.add(1, ordering: .relaxed)
    }

    /// One finished request with metrics on: counters now, durations into this loop's batch.
    func requestEnded(
        _ metrics: RuntimeMetrics, route: Int?, method: HTTPMethod, status: Int, durationNanoseconds: Int64,
        upstream: (UpstreamMetrics, Int64)?, bodyBytesIn: Int, bodyBytesOut: Int
    ) {
        let route = metrics.routes.forRoute(route)
        route.requests(method: method, status: status).increment()
        if bodyBytesIn > 0 { metrics.front.requestBodyBytes.increment(by: bodyBytesIn) }
        if bodyBytesOut > 0 { metrics.front.responseBodyBytes.increment(by: bodyBytesOut) }
        samples.append((route.duration, durationNanoseconds))
        if let (upstreamMetrics, nanoseconds) = upstream { samples.append((upstreamMetrics.responseTime, nanoseconds)) }
        if samples.count >= Self.batch - 1 { flush() }
    }

    /// Hands the batch to the shared histograms (each 1 s tick, before a scrape, and when the batch is full).
    func flush() {
        for (timer, nanoseconds) in samples { timer.recordNanoseconds(nanoseconds) }
        samples.removeAll(keepingCapacity: true)
    }
}

/// What one configuration's requests record into: the process's metrics and this configuration's route handles.
struct RuntimeMetrics: Sendable {
    let front: FrontMetrics
    let routes: RouteMetricsTable
}
