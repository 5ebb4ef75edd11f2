import CoreMetrics
import NIOHTTP1
import KeelMetrics

/// keel's metrics: one Prometheus registry for the process, and swift-metrics handles made from it once (at start
/// and at each reload, per route, method and status class), so a request only indexes arrays and bumps atomics.
/// Labels are bounded: routes come from the configuration, methods outside the common eight count as OTHER.
public final class FrontMetrics: Sendable {
    /// 1 ms to 30 s: proxied apps' answers, not a static server's microseconds.
    static let durationBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let descriptions: [String: DescribedPrometheusFactory.Description] = [
        "keel_connections_active": .init(help: "Client connections open now."),
        "keel_tls_handshakes_total": .init(help: "TLS handshakes completed."),
        "keel_tls_handshake_failures_total": .init(help: "TLS handshakes that failed or timed out."),
        "keel_request_body_bytes_total": .init(help: "Request body bytes received from clients."),
        "keel_response_body_bytes_total": .init(help: "Response body bytes sent to clients (before gzip)."),
        "keel_upstream_failures_total": .init(
            help: "Upstream connects that failed, responses that timed out or were malformed, by server."),
        "keel_upstream_response_seconds": .init(
            help: "Time from picking an upstream server to the end of its response.", buckets: durationBuckets),
        "keel_http_requests_total": .init(
            help: "Requests answered, by route, method and status class (499: the client left first)."),
        "keel_http_request_duration_seconds": .init(
            help: "Time from a request's head to the end of its response.", buckets: durationBuckets),
        "keel_http2_connections_active": .init(help: "HTTP/2 client connections open now."),
        "keel_http2_streams_total": .init(help: "HTTP/2 streams clients opened."),
        "keel_http2_cut_offs_total": .init(
            help: "HTTP/2 connections closed with an error GOAWAY, by what the client did (rapid_reset, control_frame_flood, ...)."),
    ]

    let factory = DescribedPrometheusFactory(descriptions: FrontMetrics.descriptions)

    /// "2xx" and so on: index = status / 100 - 1.
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    static let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"]

    let connectionsActive: CoreMetrics.Gauge
    let tlsHandshakes: CoreMetrics.Counter
    let tlsHandshakeFailures: CoreMetrics.Counter
    let requestBodyBytes: CoreMetrics.Counter
    let responseBodyBytes: CoreMetrics.Counter
    let http2ConnectionsActive: CoreMetrics.Gauge
    let http2Streams: CoreMetrics.Counter
    /// One per HTTP2CutOff, in its order.
    private let http2CutOffs: [CoreMetrics.Counter]

    public init() {
        connectionsActive = Gauge(label: "keel_connections_active", factory: factory)
        tlsHandshakes = Counter(label: "keel_tls_handshakes_total", factory: factory)
        tlsHandshakeFailures = Counter(label: "keel_tls_handshake_failures_total", factory: factory)
        requestBodyBytes = Counter(label: "keel_request_body_bytes_total", factory: factory)
        responseBodyBytes = Counter(label: "keel_response_body_bytes_total", factory: factory)
        http2ConnectionsActive = Gauge(label: "keel_http2_connections_active", factory: factory)
        http2Streams = Counter(label: "keel_http2_streams_total", factory: factory)
        http2CutOffs = HTTP2CutOff.allCases.map { [factory] reason in
            Counter(label: "keel_http2_cut_offs_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
    }

    func http2CutOff(_ reason: HTTP2CutOff) -> CoreMetrics.Counter { http2CutOffs[reason.index] }

    /// The text exposition of every metric (Prometheus format 0.0.4).
    func exposition(connections: Int, http2Connections: Int = 0) -> [UInt8] {
        connectionsActive.record(connections)
        http2ConnectionsActive.record(http2Connections)
        return factory.exposition()
    }

    /// Handles for one configuration's routes and upstreams (the registry hands back the same series on reload).
    func resolve(_ configuration: FrontConfiguration) -> RouteMetricsTable {
        var routes = configuration.routes.map { makeRouteMetrics(label: Self.routeLabel($0)) }
        routes.append(makeRouteMetrics(label: "none"))
        return RouteMetricsTable(routes: routes)
    }

    /// Per server of an upstream group: its failure counter; and the group's upstream-time histogram.
    func upstreamMetrics(_ upstream: FrontConfiguration.Upstream) -> UpstreamMetrics {
        let failures = upstream.servers.map { server in
            Counter(
                label: "keel_upstream_failures_total", dimensions: [("upstream", upstream.name), ("server", server.description)],
                factory: factory)
        }
        let time = Timer(label: "keel_upstream_response_seconds", dimensions: [("upstream", upstream.name)], factory: factory)
        return UpstreamMetrics(failures: failures, responseTime: time)
    }

    private func makeRouteMetrics(label: String) -> RouteMetrics {
        var requests: [CoreMetrics.Counter] = []
        for method in Self.methods {
            for status in Self.statusClasses {
                requests.append(
                    Counter(
                        label: "keel_http_requests_total", dimensions: [("route", label), ("method", method), ("status", status)],
                        factory: factory))
            }
        }
        let duration = Timer(label: "keel_http_request_duration_seconds", dimensions: [("route", label)], factory: factory)
        return RouteMetrics(requests: requests, duration: duration)
    }

    /// "/api" for a route of the default server, "example.com/api" for one with hosts.
    static func routeLabel(_ route: FrontConfiguration.Route) -> String {
        route.hosts.isEmpty ? route.pathPrefix : route.hosts.joined(separator: ",") + route.pathPrefix
    }

    static func methodIndex(_ method: HTTPMethod) -> Int {
        switch method {
        case .GET: 0
        case .HEAD: 1
        case .POST: 2
        case .PUT: 3
        case .DELETE: 4
        case .PATCH: 5
        case .OPTIONS: 6
        default: 7
        }
    }

    static func statusClassIndex(_ status: Int) -> Int { min(max(status / 100, 1), 5) - 1 }
}

/// One route's handles: requests by method × status class (flat, method-major), and its duration histogram.
struct RouteMetrics: Sendable {
    let requests: [CoreMetrics.Counter]
    let duration: CoreMetrics.Timer

    func requests(method: HTTPMethod, status: Int) -> CoreMetrics.Counter {
        requests[
            FrontMetrics.methodIndex(method) * FrontMetrics.statusClasses.count + FrontMetrics.statusClassIndex(status)]
    }
}

/// Route handles indexed as the configuration's routes; the last entry is for requests no route took.
struct RouteMetricsTable: Sendable {
    let routes: [RouteMetrics]

    func forRoute(_ index: Int?) -> RouteMetrics {
        guard let index, index < routes.count - 1 else { return routes[routes.count - 1] }
        return routes[index]
    }
}

/// An upstream group's handles: failures per server (indexed as its servers) and its response-time histogram.
struct UpstreamMetrics: Sendable {
    let failures: [CoreMetrics.Counter]
    let responseTime: CoreMetrics.Timer
}
