import ArgumentParser
import Foundation
import KeelSystem
import KeelTune

#if canImport(Glibc)
    import Glibc
#endif

extension KeelPoolCommand {
    /// `keel-pool tune`: finds the processes × threads (or × worker-connections) shape for an app on this machine.
    struct Tune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Search the processes × threads (or worker-connections) shape that serves an app best here.",
            discussion: """
                Give the app's flags as for a run (--wsgi-file, --wsgi, --asgi, --app, --virtualenv, --chdir, \
                --gevent, …); tune passes them on to every keel-pool it starts and adds --http-socket, --stats, \
                --processes and --threads (or --worker-connections / --gevent N) itself.
                Examples:
                  keel-pool tune --wsgi-file app.py --allow-root --url '/sleep?s=0.05' --concurrency 16 --budget 60s
                  keel-pool tune --asgi main:app --urls urls.txt --concurrency 8-64 --p99-target 200 --max-memory 2G
                """)

        @Option(
            name: .customLong("url"),
            help: ArgumentHelp("A path to request, e.g. /sleep?s=0.05. Repeatable.", valueName: "PATH"))
        var urls: [String] = []

        @Option(
            name: .customLong("urls"),
            help: ArgumentHelp("A file of 'WEIGHT PATH' lines: the request mix.", valueName: "FILE"))
        var urlFile: String?

        @Option(
            help: ArgumentHelp(
                "Client connections: N, or LOW-HIGH (searched at HIGH, the pick checked at LOW).",
                valueName: "N|LOW-HIGH"))
        var concurrency = "16"

        @Option(help: ArgumentHelp("How long the whole run may take: 120s, 2m, or seconds.", valueName: "DURATION"))
        var budget = "120s"

        @Option(
            name: .customLong("max-memory"),
            help: ArgumentHelp("Skip shapes whose workers' RSS would exceed SIZE (512M, 2G).", valueName: "SIZE"))
        var maxMemory: String?

        @Option(
            name: .customLong("p99-target"),
            help: ArgumentHelp("Recommend no shape whose p99 latency is over MS.", valueName: "MS"))
        var p99Target: Double?

        @Option(
            help: ArgumentHelp(
                "Arrival rate for the open-loop check of the pick (default 80 % of its rate).", valueName: "REQ/S"))
        var rate: Double?

        @Option(
            help: ArgumentHelp("Directory for the reports and pool logs (default ./keel-tune-TIME).", valueName: "DIR"))
        var out: String?

        @Flag(help: "Measure every shape of the grid instead of searching (the benchmark's baseline).")
        var sweep = false

        func run() throws {
            let configuration = try validated()
            let code = TuneRunner(configuration: configuration).run()
            if code != 0 { throw ExitCode(code) }
        }

        private func validated() throws -> TuneConfiguration {
            do {
                var paths = try urls.map { try WeightedPath(weight: 1, path: TuneInput.path($0, flag: "--url")) }
                if let urlFile {
                    guard let text = try? String(contentsOfFile: urlFile, encoding: .utf8) else {
                        throw ValidationError("--urls \(urlFile): cannot read the file")
                    }
                    paths += try TuneInput.weightedPaths(text, file: urlFile)
                }
                guard !paths.isEmpty else {
                    throw ValidationError("give at least one --url PATH (or --urls FILE) to request")
                }
                // The parent command's PoolOptions take the app's flags, so they are read from the command line.
                let app = try TuneConfiguration.appArguments(
                    TuneConfiguration.appFlags(commandLine: SelfInvocation.arguments))
                guard !app.arguments.isEmpty else {
                    throw ValidationError("no app to tune: give the app's flags as for a run, e.g. --wsgi-file app.py")
                }
                if let p99Target, !(p99Target > 0) {
                    throw ValidationError("--p99-target \(p99Target): expected milliseconds above 0")
                }
                if let rate, !(rate > 0) {
                    throw ValidationError("--rate \(rate): expected requests per second above 0")
                }
                return TuneConfiguration(
                    poolExecutable: Self.ownExecutable, appArguments: app.arguments, kind: app.kind, paths: paths,
                    concurrency: try TuneInput.range(concurrency, flag: "--concurrency"),
                    budgetSeconds: try TuneInput.duration(budget, flag: "--budget"),
                    maxMemory: try maxMemory.map { try TuneInput.size($0, flag: "--max-memory") },
                    p99TargetMs: p99Target, outDirectory: out ?? Self.defaultOutDirectory(), sweep: sweep,
                    checkRate: rate,
                    cores: Self.cores)
            } catch let error as TuneInput.InputError {
                throw ValidationError(error.description)
            } catch let error as TuneError {
                throw ValidationError(error.description)
            }
        }

        /// tune starts its own binary: the keel-pool that is running it.
        static var ownExecutable: String {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        }

        /// Cores this process may run on (Foundation reads the affinity mask a container or taskset sets).
        static var cores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

        static func defaultOutDirectory() -> String {
            var now = time(nil)
            var parts = tm()
            gmtime_r(&now, &parts)
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            return "./keel-tune-\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))-"
                + "\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))"
        }
    }

    /// Hidden: tune starts each keel-pool through this, so the pool ends when tune does (see `TiedExec`).
    struct TunePoolCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: TiedExec.subcommand, shouldDisplay: false)

        @Option(name: .customLong("tune-parent")) var parent: Int32
        @Argument(parsing: .postTerminator) var command: [String]

        func run() throws {
            let code = TiedExec.execTied(parent: parent, command: command)
            throw code == 1
                ? ExitCode(1)
                : ValidationError("cannot run \(command.first ?? "nothing"): \(String(cString: strerror(errno)))")
        }
    }
}
