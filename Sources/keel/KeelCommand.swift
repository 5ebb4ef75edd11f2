import ArgumentParser
import KeelFront
import KeelPoolCommands
import KeelSystem
import KeelTLS

#if canImport(Glibc)
import Glibc
#endif

@main
struct KeelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel",
        abstract: "An nginx-like front proxy for keel-pool and uWSGI (uwsgi protocol), HTTP backends and static files.",
        discussion: """
            With no arguments keel serves a demo on http://127.0.0.1:8080/: it starts keel-pool with the built-in
            hello app and routes / to it. Signals: TERM drains and stops, INT/QUIT stop at once, HUP reloads --config,
            USR1 reopens the logs.
            `keel pool ARGS` runs keel-pool with exactly keel-pool's command line (`keel pool --help`, `keel pool
            check`, `keel pool stats`); keel starts its [[pool]]s that way when no keel-pool is beside it.
            """,
        version: VersionCommand.report,
        subcommands: [Run.self, Check.self, VersionCommand.self],
        defaultSubcommand: Run.self
    )

    /// `keel pool …` is keel-pool itself (one implementation, KeelPoolCommands), before keel's own parser sees it.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "pool" {
            SelfInvocation.prefix = ["pool"]
            SelfInvocation.arguments = Array(arguments.dropFirst())
            KeelPoolCommand.main(SelfInvocation.arguments)
            Glibc.exit(0)
        }
        await main(nil)
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Serve (the default).")

        @OptionGroup var options: KeelOptions

        func run() async throws {
            let configuration: FrontConfiguration
            var demoDirectory: String?
            // systemd's sockets, taken before anything starts a process that could inherit the variables.
            let inherited: [InheritedSocket]
            do {
                inherited = try SocketActivation.take()
            } catch {
                printError("keel: \(error)")
                throw ExitCode(2)
            }
            if options.isEmpty {
                var template = Array("/tmp/keel-demo-XXXXXX".utf8CString)
                guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                    throw ValidationError("cannot create a directory for the demo socket under /tmp")
                }
                demoDirectory = String(cString: made)
                do {
                    let demoCertificate = try DemoCertificate.ensure()
                    if demoCertificate.created {
                        printError("keel: created a self-signed certificate for localhost (first run): \(demoCertificate.certificate.chainPath)")
                    }
                    try writeDemoApp(into: demoDirectory!)
                    var demo = ConfigurationBuilder.demo(socketDirectory: demoDirectory!, certificate: demoCertificate.certificate)
                    try ConfigurationBuilder.applyObservability(options, to: &demo)
                    if !inherited.isEmpty {
                        // The demo serves on whatever systemd passed, plaintext.
                        demo.listeners = []
                        try ConfigurationBuilder.adopt(inherited, into: &demo)
                    }
                    configuration = demo
                } catch {
                    printError("keel: \(error)")
                    throw ExitCode(1)
                }
            } else {
                do {
                    configuration = try ConfigurationBuilder.build(options, inherited: inherited)
                } catch {
                    printError("keel: \(error)")
                    throw ExitCode(2)
                }
            }
            let tls: TLSServerContext?
            do {
                tls = try FrontTLS.context(for: configuration)
            } catch {
                printError("keel: \(error)")
                throw ExitCode(2)
            }
            let options = self.options
            var reload: (@Sendable () throws -> FrontConfiguration)?
            if options.configPath != nil {
                reload = { @Sendable () throws -> FrontConfiguration in
                    do {
                        return try ConfigurationBuilder.build(options, inherited: inherited)
                    } catch {
                        throw error
                    }
                }
            }
            let isDemo = demoDirectory != nil
            let code = try await FrontBundle.run(configuration, tls: tls, reload: reload) { addresses in
                guard isDemo, addresses.count == 2 else { return }
                printError(
                    "keel: demo running — http://\(addresses[0].hostAndPort)/ and https://\(addresses[1].hostAndPort)/ "
                        + "(self-signed: curl -k): / → the WSGI example app (deploy/examples/wsgi/app.py: /, /env, /echo, "
                        + "/sleep?s=1; keel-pool 2 processes × 4 threads), /swift/ → keel-pool's built-in Swift hello "
                        + "handler, /keel/status → the live status page (loopback only). Ctrl-C stops them all.")
            }
            if let demoDirectory { removeDemoDirectory(demoDirectory) }
            if code != 0 { throw ExitCode(code) }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check", abstract: "Validate the configuration (file and flags) without starting anything.")

        @OptionGroup var options: KeelOptions

        func run() throws {
            do {
                let configuration = try ConfigurationBuilder.build(options)
                let tls = try FrontTLS.context(for: configuration)
                for warning in tls?.warnings ?? [] { printError("keel: warning: \(warning)") }
                print(
                    "keel: configuration OK: \(configuration.listeners.count) listeners, \(configuration.routes.count) routes, "
                        + "\(configuration.upstreams.count) upstreams, \(configuration.pools.count) pools")
            } catch {
                printError("keel: \(error)")
                throw ExitCode(2)
            }
        }
    }
}

/// The demo's WSGI app goes next to its sockets; keel-pool imports it from there.
func writeDemoApp(into directory: String) throws {
    let path = "\(directory)/\(DemoWSGIApp.fileName)"
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw ValidationError("cannot write the demo app to \(path): errno \(errno)") }
    defer { close(fd) }
    var text = DemoWSGIApp.source
    let written = text.withUTF8 { write(fd, $0.baseAddress, $0.count) }
    guard written == DemoWSGIApp.source.utf8.count else { throw ValidationError("cannot write the demo app to \(path)") }
}

/// The demo directory holds the app, the sockets (gone by now) and Python's __pycache__.
func removeDemoDirectory(_ directory: String) {
    let cache = "\(directory)/__pycache__"
    if let dir = opendir(cache) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { unlink("\(cache)/\(name)") }
        }
        closedir(dir)
        rmdir(cache)
    }
    unlink("\(directory)/\(DemoWSGIApp.fileName)")
    rmdir(directory)
}

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
