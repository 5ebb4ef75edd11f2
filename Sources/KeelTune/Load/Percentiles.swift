/// Nearest-rank percentiles of latencies in microseconds (what `ab` and wrk print), sorted once.
public struct Percentiles: Sendable {
    public let sorted: [UInt32]

    public init(_ samples: [UInt32]) { sorted = samples.sorted() }

    /// The smallest sample with at least `percent` % of samples at or below it; 0 when there are none.
    public func value(at percent: Double) -> UInt32 {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((percent / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    public func milliseconds(at percent: Double) -> Double { Double(value(at: percent)) / 1000 }
}
