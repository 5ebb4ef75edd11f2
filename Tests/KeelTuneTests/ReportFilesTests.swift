import Foundation
import Testing

@testable import KeelTune

#if canImport(FoundationXML)
    import FoundationXML
#endif

@Suite struct ReportFilesTests {
    static func report(recommended: Bool = true) -> TuneReport {
        let measurements = [
            Measurement(
                shape: Shape(processes: 2, perProcess: 1), requestsPerSecond: 39.9, p50Ms: 256, p99Ms: 1992,
                requests: 60, errors: 0, rssPerWorker: 31 << 20, cpuPerRequestMs: 0.9, blockingRatio: 54,
                concurrency: 16, seconds: 1.5),
            Measurement(
                shape: Shape(processes: 2, perProcess: 8), requestsPerSecond: 308.7, p50Ms: 51.5, p99Ms: 53,
                requests: 463, errors: 0, rssPerWorker: 32 << 20, cpuPerRequestMs: 0.4, blockingRatio: 130,
                concurrency: 16, seconds: 1.5),
        ]
        return TuneReport(
            status: .complete, kind: .threads, cores: 2, mode: "search",
            paths: [WeightedPath(weight: 1, path: "/s?a=<b>&c")],
            concurrency: [16, 16], budgetSeconds: 30, elapsedSeconds: 17, maxMemoryBytes: nil, p99TargetMs: 100,
            appArguments: ["--wsgi-file", "my app.py"], measurements: measurements,
            recommended: recommended ? measurements[1] : nil)
    }

    @Test func jsonHoldsEveryMeasurement() throws {
        let data = try ReportFiles.json(Self.report())
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let measurements = try #require(document["measurements"] as? [[String: Any]])
        #expect(measurements.count == 2)
        #expect((measurements[1]["shape"] as? [String: Any])?["per_process"] as? Int == 8)
        #expect(measurements[1]["requests_per_second"] as? Double == 308.7)
        #expect(document["status"] as? String == "complete")
        #expect(measurements[1]["offered_rate"] is NSNull)
        let unrecommended = try #require(
            try JSONSerialization.jsonObject(with: ReportFiles.json(Self.report(recommended: false))) as? [String: Any])
        #expect(unrecommended["recommended"] is NSNull && unrecommended["recommended_command"] is NSNull)
        #expect(
            document["recommended_command"] as? String
                == "keel-pool --wsgi-file 'my app.py' --processes 2 --threads 8")
    }

    @Test func svgIsWellFormedWithABarAndAPointPerShape() throws {
        let svg = ReportFiles.svg(Self.report())
        let delegate = ElementCounter()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = delegate
        #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        #expect(delegate.counts["svg"] == 1)
        #expect(delegate.counts["circle"] == 2)
        #expect(delegate.counts["polyline"] == 1)
        // The two axes' bars plus the background.
        #expect(delegate.counts["rect"] == 3)
    }

    @Test func htmlIsSelfContainedAndEscaped() {
        let html = ReportFiles.html(Self.report())
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(!html.contains("src=") && !html.contains("href="))
        #expect(html.contains("/s?a=&lt;b&gt;&amp;c"))
        #expect(html.contains("--processes 2 --threads 8"))
        #expect(ReportFiles.html(Self.report(recommended: false)).contains("No shape is recommended"))
    }

    @Test func terminalTableMarksTheRecommendation() {
        let table = TerminalTable.render(Self.report())
        let lines = table.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[3].hasPrefix("2×8") && lines[3].contains("◀ recommended"))
        #expect(lines[2].contains("p99 over target"))
    }

    @Test(arguments: [
        (1.25, 1, "1.3"), (0.0, 2, "0.00"), (308.66, 1, "308.7"), (-2.5, 0, "-3"), (12.0, 0, "12"), (0.05, 2, "0.05"),
    ])
    func fixedDecimals(value: Double, decimals: Int, text: String) {
        #expect(TerminalTable.format(value, decimals) == text)
    }
}

final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        counts[elementName, default: 0] += 1
    }
}
