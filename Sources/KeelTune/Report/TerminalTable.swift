/// The plain-text table tune prints: one row per measured shape, the recommended one marked.
public enum TerminalTable {
    public static func render(_ report: TuneReport) -> String {
        let header = ["shape", "req/s", "p50 ms", "p99 ms", "errors", "RSS/worker", "CPU/req", "note"]
        var rows = [header]
        for measurement in report.measurements {
            rows.append(row(measurement, report: report))
        }
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        let lines = rows.map { row in
            row.enumerated().map { index, cell in
                // Text columns left-aligned, numbers right-aligned.
                index == 0 || index == row.count - 1 ? pad(cell, widths[index]) : padLeft(cell, widths[index])
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        var text = "shape = processes × \(report.kind.unit) per process\n" + lines.joined(separator: "\n") + "\n"
        for verification in report.verification {
            let load =
                verification.offeredRate.map { "open loop at \(format($0, 1)) req/s" }
                ?? "closed loop, \(verification.concurrency ?? 0) connections"
            text +=
                "check \(verification.shape), \(load): \(format(verification.requestsPerSecond, 1)) req/s, "
                + "p50 \(format(verification.p50Ms, 1)) ms, p99 \(format(verification.p99Ms, 1)) ms, "
                + "\(verification.errors) errors\n"
        }
        return text
    }

    static func row(_ measurement: Measurement, report: TuneReport) -> [String] {
        var notes: [String] = []
        if measurement.shape == report.recommended?.shape { notes.append("◀ recommended") }
        if let target = report.p99TargetMs, measurement.p99Ms > target { notes.append("p99 over target") }
        if measurement.errorRate > 0.01 { notes.append("errors") }
        if let limit = report.maxMemoryBytes, measurement.rssPerWorker * measurement.shape.processes > limit {
            notes.append("over max memory")
        }
        return [
            measurement.shape.description, format(measurement.requestsPerSecond, 1), format(measurement.p50Ms, 1),
            format(measurement.p99Ms, 1), String(measurement.errors),
            format(Double(measurement.rssPerWorker) / 1_048_576, 1) + " MiB",
            format(measurement.cpuPerRequestMs, 2) + " ms", notes.joined(separator: ", "),
        ]
    }

    /// Fixed decimals without Foundation's String(format:).
    public static func format(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        var fraction = String(Int(scaled) - whole * Int(scale))
        while fraction.count < decimals { fraction = "0" + fraction }
        let sign = value < 0 && scaled > 0 ? "-" : ""
        return decimals == 0 ? sign + String(whole) : sign + String(whole) + "." + fraction
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    private static func padLeft(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
