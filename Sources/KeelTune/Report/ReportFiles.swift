import Foundation

/// tune.json (every measurement) and tune-report.html (a table and an inline SVG plot, no external assets).
public enum ReportFiles {
    public static let jsonName = "tune.json"
    public static let htmlName = "tune-report.html"

    public static func json(_ report: TuneReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(report)
    }

    /// Writes both files into `directory`; returns their paths.
    @discardableResult
    public static func write(_ report: TuneReport, to directory: String) throws -> [String] {
        let jsonPath = directory + "/" + jsonName
        let htmlPath = directory + "/" + htmlName
        try json(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        try Data(html(report).utf8).write(to: URL(fileURLWithPath: htmlPath), options: .atomic)
        return [jsonPath, htmlPath]
    }

    public static func html(_ report: TuneReport) -> String {
        let recommendation =
            report.recommendedCommand.map { "<p>Recommended:</p>\n<pre>\(escape($0))</pre>" }
            ?? "<p><strong>No shape is recommended</strong>: \(escape(report.message ?? "none met the limits"))</p>"
        let header = ["shape", "req/s", "p50 ms", "p99 ms", "errors", "RSS/worker", "CPU/req", "note"]
        let rows = report.measurements.map { measurement in
            "<tr>" + TerminalTable.row(measurement, report: report).map { "<td>\(escape($0))</td>" }.joined() + "</tr>"
        }
        let paths = report.paths.map { "\($0.weight) \($0.path)" }.joined(separator: ", ")
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>keel-pool tune</title>
            <style>
            body { font-family: sans-serif; margin: 2em; color: #222; }
            table { border-collapse: collapse; }
            td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
            pre { background: #f4f4f4; padding: 0.6em; }
            </style>
            </head>
            <body>
            <h1>keel-pool tune</h1>
            <p>Status: \(escape(report.status.rawValue))\(report.message.map { " — " + escape($0) } ?? ""). \
            \(report.measurements.count) shapes measured (\(escape(report.mode))) in \
            \(TerminalTable.format(report.elapsedSeconds, 1)) s of a \(TerminalTable.format(report.budgetSeconds, 0)) s \
            budget on \(report.cores) cores; URLs (weight path): \(escape(paths)); client connections: \
            \(Set(report.concurrency).sorted().map(String.init).joined(separator: "-")).</p>
            \(recommendation)
            \(checks(report))
            \(svg(report))
            <table>
            <tr>\(header.map { "<th>\(escape($0))</th>" }.joined())</tr>
            \(rows.joined(separator: "\n"))
            </table>
            </body>
            </html>

            """
    }

    /// The recommended shape measured again at other loads, one line each as in the terminal.
    static func checks(_ report: TuneReport) -> String {
        let lines = TerminalTable.render(report).split(separator: "\n").filter { $0.hasPrefix("check ") }
        guard !lines.isEmpty else { return "" }
        return "<ul>\n" + lines.map { "<li>\(escape(String($0)))</li>" }.joined(separator: "\n") + "\n</ul>"
    }

    /// Requests/s as bars (left axis) and p99 as a line (right axis), one column per shape in measured order.
    public static func svg(_ report: TuneReport) -> String {
        let measurements = report.measurements
        let width = 760.0
        let height = 360.0
        let left = 70.0
        let right = 70.0
        let top = 30.0
        let bottom = 60.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let maxRate = max(1, measurements.map(\.requestsPerSecond).max() ?? 1)
        let maxP99 = max(1, measurements.map(\.p99Ms).max() ?? 1)
        let step = plotWidth / Double(max(1, measurements.count))
        var parts: [String] = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
                + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"requests per second and p99 per shape\">",
            "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"white\"/>",
            line(left, top, left, top + plotHeight, "#444"),
            line(left, top + plotHeight, left + plotWidth, top + plotHeight, "#444"),
            line(left + plotWidth, top, left + plotWidth, top + plotHeight, "#444"),
            text(
                left, top - 10, "req/s (bars), max \(TerminalTable.format(maxRate, 1))", anchor: "start",
                color: "#2b6cb0"),
            text(
                left + plotWidth, top - 10, "p99 ms (line), max \(TerminalTable.format(maxP99, 1))", anchor: "end",
                color: "#c53030"),
        ]
        var points: [String] = []
        for (index, measurement) in measurements.enumerated() {
            let x = left + step * Double(index)
            let barHeight = plotHeight * measurement.requestsPerSecond / maxRate
            let fill = measurement.shape == report.recommended?.shape ? "#2f855a" : "#2b6cb0"
            parts.append(
                "<rect x=\"\(n(x + step * 0.15))\" y=\"\(n(top + plotHeight - barHeight))\" width=\"\(n(step * 0.7))\" "
                    + "height=\"\(n(barHeight))\" fill=\"\(fill)\"><title>\(escape(measurement.shape.description)): "
                    + "\(TerminalTable.format(measurement.requestsPerSecond, 1)) req/s</title></rect>")
            let y = top + plotHeight - plotHeight * measurement.p99Ms / maxP99
            points.append("\(n(x + step / 2)),\(n(y))")
            parts.append("<circle cx=\"\(n(x + step / 2))\" cy=\"\(n(y))\" r=\"3\" fill=\"#c53030\"/>")
            parts.append(
                text(
                    x + step / 2, top + plotHeight + 18, measurement.shape.description, anchor: "middle", color: "#222")
            )
        }
        if points.count > 1 {
            parts.append(
                "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"#c53030\" stroke-width=\"2\"/>"
            )
        }
        parts.append(
            text(
                left + plotWidth / 2, height - 15, "shape (processes × \(report.kind.unit)), in measured order",
                anchor: "middle", color: "#222"))
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }

    private static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ color: String) -> String {
        "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(color)\"/>"
    }

    private static func text(_ x: Double, _ y: Double, _ content: String, anchor: String, color: String) -> String {
        "<text x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\" font-size=\"12\" fill=\"\(color)\">\(escape(content))</text>"
    }

    private static func n(_ value: Double) -> String { TerminalTable.format(value, 1) }

    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
