import CoreMetrics
import NIOHTTP1
import Prometheus

/// keel's metrics: one Prometheus registry for the process, and swift-metrics handles made from it once (at start
/// and at each reload, per route, method and status class), so a request only indexes arrays and bumps atomics.
/// Labels are bounded: routes come from the configuration, methods outside the common eight count as OTHER.
public final class FrontMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory

    /// "2xx" and so on: index = status / 100 - 1.
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    static let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"]
    /// 1 ms to 30 s: proxied apps' answers, not a static server's microseconds.
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5), .seconds(10), .seconds(30),
    ]

    let connectionsActive: Prometheus.Gauge
    let tlsHandshakes: CoreMetrics.Counter
    let tlsHandshakeFailures: CoreMetrics.Counter
    let requestBodyBytes: CoreMetrics.Counter
    let responseBodyBytes: CoreMetrics.Counter

    public init() {
        factory = PrometheusMetricsFactory(registry: registry)
        connectionsActive = registry.makeGauge(
            descriptor: Self.name("connections", "active", "Client connections open now."))
        tlsHandshakes = Self.counter(registry, factory, "tls_handshakes", "total", [], "TLS handshakes completed.")
        tlsHandshakeFailures = Self.counter(
            registry, factory, "tls_handshake_failures", "total", [], "TLS handshakes that failed or timed out.")
        requestBodyBytes = Self.counter(
            registry, factory, "request_body_bytes", "total", [], "Request body bytes received from clients.")
        responseBodyBytes = Self.counter(
            registry, factory, "response_body_bytes", "total", [], "Response body bytes sent to clients (before gzip).")
    }

    /// The text exposition of every metric (Prometheus format 0.0.4).
    func exposition(connections: Int) -> [UInt8] {
        connectionsActive.set(to: Double(connections))
        return registry.emitToBuffer()
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
            Self.counter(
                registry, factory, "upstream_failures", "total",
                [("upstream", upstream.name), ("server", server.description)],
                "Upstream connects that failed, responses that timed out or were malformed, by server.")
        }
        let time = Self.timer(
            registry, factory, "upstream_response", "seconds", [("upstream", upstream.name)],
            "Time from picking an upstream server to the end of its response.")
        return UpstreamMetrics(failures: failures, responseTime: time)
    }

    private func makeRouteMetrics(label: String) -> RouteMetrics {
        var requests: [CoreMetrics.Counter] = []
        for method in Self.methods {
            for status in Self.statusClasses {
                requests.append(
                    Self.counter(
                        registry, factory, "http_requests", "total",
                        [("route", label), ("method", method), ("status", status)],
                        "Requests answered, by route, method and status class (499: the client left first)."))
            }
        }
        let duration = Self.timer(
            registry, factory, "http_request_duration", "seconds", [("route", label)],
            "Time from a request's head to the end of its response.")
        return RouteMetrics(requests: requests, duration: duration)
    }

    /// "/api" for a route of the default server, "example.com/api" for one with hosts.
    static func routeLabel(_ route: FrontConfiguration.Route) -> String {
        route.hosts.isEmpty ? route.pathPrefix : route.hosts.joined(separator: ",") + route.pathPrefix
    }

    /// keel_METRIC_UNIT, with its HELP line.
    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "keel", metricName: metric, unitName: unit, helpText: help)
    }

    private static func counter(
        _ registry: PrometheusCollectorRegistry, _ factory: PrometheusMetricsFactory, _ metric: String, _ unit: String,
        _ labels: [(String, String)], _ help: String
    ) -> CoreMetrics.Counter {
        let descriptor = name(metric, unit, help)
        let handler = registry.makeCounter(descriptor: descriptor, labels: labels)
        return CoreMetrics.Counter(label: descriptor.name, dimensions: labels, handler: handler, factory: factory)
    }

    private static func timer(
        _ registry: PrometheusCollectorRegistry, _ factory: PrometheusMetricsFactory, _ metric: String, _ unit: String,
        _ labels: [(String, String)], _ help: String
    ) -> CoreMetrics.Timer {
        let descriptor = name(metric, unit, help)
        let handler = registry.makeDurationHistogram(descriptor: descriptor, labels: labels, buckets: durationBuckets)
        return CoreMetrics.Timer(label: descriptor.name, dimensions: labels, handler: handler, factory: factory)
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
