import ArgumentParser
import Foundation
import KeelPool

#if canImport(Glibc)
import Glibc
#endif

extension KeelPoolCommand {
    /// Reads a `--stats` server and prints the pool as a table (uwsgitop's job, once).
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a running pool's --stats document as a table (--json for the document itself).")

        @Argument(help: ArgumentHelp("The --stats address of the pool.", valueName: "PATH|HOST:PORT"))
        var address: String

        @Flag(name: .customLong("json"), help: "Print the JSON document as received.")
        var json = false

        func run() throws {
            let parsed: ListenAddress
            do { parsed = try ListenAddress.parse(address, flag: "stats") } catch { throw ValidationError(error.description) }
            let text = try Self.fetch(parsed)
            if json {
                print(text, terminator: "")
                return
            }
            guard let document = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw ValidationError("\(address) did not answer with a keel-pool stats document")
            }
            print(Self.table(document))
        }

        static func fetch(_ address: ListenAddress) throws -> String {
            do {
                return try StatsClient.fetch(address)
            } catch {
                throw ValidationError("stats \(address): \(error); is keel-pool running with --stats \(address)?")
            }
        }

        static func table(_ document: [String: Any]) -> String {
            var lines = ["keel-pool master pid \(document["pid"] ?? "?"), generation \(document["generation"] ?? 0)"]
            for socket in document["sockets"] as? [[String: Any]] ?? [] {
                let queue = (socket["queue"] as? Int).map(String.init) ?? "n/a"
                lines.append("socket \(socket["name"] ?? "?") (\(socket["proto"] ?? "?")), listen queue \(queue)")
            }
            if let cheaper = document["cheaper"] as? [String: Any] {
                let busyness = (cheaper["busyness"] as? Int).map { ", busyness \($0)% in the last period" } ?? ""
                lines.append(
                    "cheaper (\(cheaper["algo"] ?? "?")): target \(cheaper["target"] ?? "?") workers of "
                        + "\(cheaper["min"] ?? "?")-\(cheaper["max"] ?? "?")\(busyness)")
            }
            let header = ["WID", "PID", "GEN", "STATUS", "REQUESTS", "RESPAWNS", "HARAKIRI", "RSS MiB", "AVG ms", "CONNS", "KEPT",
                "IN FLIGHT", "CURRENT",
            ]
            var rows = [header]
            for worker in document["workers"] as? [[String: Any]] ?? [] {
                let current = (worker["threads"] as? [[String: Any]] ?? []).compactMap { thread -> String? in
                    guard let request = thread["request"] as? String else { return nil }
                    return "\(request) (\(thread["running_ms"] ?? 0) ms)"
                }.joined(separator: "; ")
                let average = (worker["avg_rt_us"] as? Int).map { String(format: "%.2f", Double($0) / 1000) } ?? "-"
                rows.append([
                    "\(worker["id"] ?? "")", "\(worker["pid"] ?? "")", "\(worker["generation"] ?? "")",
                    "\(worker["status"] ?? "")", "\(worker["requests"] ?? 0)", "\(worker["respawns"] ?? 0)",
                    "\(worker["harakiri_count"] ?? 0)", (worker["rss_mib"] as? Int).map(String.init) ?? "-", average,
                    "\(worker["connections"] ?? 0)", "\(worker["persistent_connections"] ?? 0)", "\(worker["in_flight"] ?? 0)",
                    current,
                ])
            }
            let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                lines.append(
                    row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                        .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
            }
            let departures = document["recent_recycles"] as? [[String: Any]] ?? []
            if !departures.isEmpty { lines.append("recent recycles (newest first):") }
            for departure in departures.prefix(5) {
                let ago = (departure["ago_ms"] as? Int).map { String(format: "%.1f s ago", Double($0) / 1000) } ?? ""
                lines.append("  worker \(departure["id"] ?? "?") (pid \(departure["pid"] ?? "?")), \(ago): \(departure["reason"] ?? "")")
            }
            return lines.joined(separator: "\n")
        }
    }
}
