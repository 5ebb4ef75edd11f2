import CoreMetrics
import Prometheus

/// A swift-metrics factory over a swift-prometheus registry that gives every metric its `# HELP` line.
///
/// `PrometheusMetricsFactory` registers metrics with empty help, and `promtool check metrics` rejects an exposition
/// without help text; the registry's public descriptor API takes help, so this factory looks each label up in a table
/// of the metrics the program declares. Code records through swift-metrics' `Counter`, `Gauge`, `Timer` and
/// `Recorder` with `factory:` set to this, never through the registry directly.
public struct DescribedPrometheusFactory: MetricsFactory {
    public struct Description: Sendable {
        public var help: String
        /// Histogram buckets, in seconds for timers and in the recorded unit for recorders (nil: not a histogram).
        public var buckets: [Double]?

        public init(help: String, buckets: [Double]? = nil) {
            self.help = help
            self.buckets = buckets
        }
    }

    public let registry: PrometheusCollectorRegistry
    private let descriptions: [String: Description]

    /// `descriptions` maps each metric's full name to its help (and buckets); a label missing from it is a bug.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), descriptions: [String: Description]) {
        self.registry = registry
        self.descriptions = descriptions
    }

    /// The text exposition (format 0.0.4) of everything recorded so far.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    /// The Content-Type of `exposition()`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        guard let description = descriptions[label] else {
            preconditionFailure("metric \(label) has no description: add it to the program's metric table")
        }
        return MetricNameDescriptor(metricName: label, unitName: "", helpText: description.help)
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        let buckets = descriptions[label]?.buckets ?? [1, 10, 100, 1000, 10000]
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let seconds = descriptions[label]?.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        let buckets = seconds.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        return registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
