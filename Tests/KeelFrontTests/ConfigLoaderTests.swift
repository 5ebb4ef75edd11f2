import Foundation
import NIOCore
import Testing

@testable import KeelFront

/// A TOML document (with `$TMP` standing for a scratch directory) and the error it must give.
struct ConfigErrorCase: Sendable, CustomTestStringConvertible {
    let toml: String
    let key: String
    let message: String
    init(_ toml: String, _ key: String, _ message: String) {
        (self.toml, self.key, self.message) = (toml, key, message)
    }
    var testDescription: String { "\(key): \(message)" }
}

/// Runs `body` with a fresh directory holding "public/" (a directory) and "file.txt" (a file), then removes it.
func withScratchDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("keel-config-XXXXXX").utf8CString)
    let directory = try #require(mkdtemp(&template).map { String(cString: $0) })
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try FileManager.default.createDirectory(atPath: "\(directory)/public", withIntermediateDirectories: true)
    try Data("x".utf8).write(to: URL(fileURLWithPath: "\(directory)/file.txt"))
    return try body(directory)
}

func parseError(_ toml: String, file: String = "keel.toml") -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(toml: toml, file: file)
        return nil
    } catch {
        return error
    }
}

@Suite struct ConfigLoaderTests {
    // MARK: - Happy paths

    @Test func fullExampleFileLoadsEverything() throws {
        try withScratchDirectory { directory in
            let toml = """
                event_loops = 3
                [[listen]]
                address = "127.0.0.1:8080"
                [[listen]]
                address = 8081
                [limits]
                client_max_body_size = "2m"
                client_body_buffer_size = "32K"
                client_body_temp_path = "\(directory)"
                max_header_size = 16384
                client_header_timeout = "10s"
                client_body_timeout = 20
                send_timeout = "1m"
                keepalive_timeout = 0
                keepalive_requests = 50
                max_connections = 200
                graceful_timeout = "500ms"
                [log]
                access = "off"
                error = "\(directory)/error.log"
                level = "debug"
                [upstream.app]
                servers = ["unix:/run/app.sock", "127.0.0.1:9000"]
                max_fails = 0
                fail_timeout = "1h"
                connect_timeout = "2s"
                send_timeout = "3s"
                read_timeout = "4s"
                keepalive = 8
                [[route]]
                host = ["Example.COM", "*.example.com"]
                path = "/api"
                uwsgi = "app"
                [[route]]
                uwsgi = "/run/other.sock"
                [[route]]
                path = "/web"
                proxy = "http://127.0.0.1:8000/"
                [[route]]
                path = "/static"
                static = "./public/"
                [[route]]
                path = "/old"
                redirect = "https://example.com/"
                status = 301
                [[route]]
                path = "/health"
                return = 200
                body = "ok"
                content_type = "text/json"
                [[route]]
                path = "/go"
                redirect = "/new"
                [[pool]]
                name = "app"
                args = ["--socket", "/run/app.sock", "--processes", "2", "--app", "hello"]
                [[pool]]
                command = "/usr/bin/keel-pool -s :3031 --app 'hello world'"
                """
            let path = "\(directory)/keel.toml"
            try Data(toml.utf8).write(to: URL(fileURLWithPath: path))
            let config = try ConfigLoader.load(path: path)

            var limits = FrontConfiguration.Limits()
            limits.clientMaxBodySize = 2 << 20
            limits.clientBodyBufferSize = 32 << 10
            limits.clientBodyTempPath = directory
            limits.maxHeaderSize = 16384
            limits.clientHeaderTimeout = .seconds(10)
            limits.clientBodyTimeout = .seconds(20)
            limits.sendTimeout = .minutes(1)
            limits.keepaliveTimeout = .zero
            limits.keepaliveRequests = 50
            limits.maxConnections = 200
            limits.gracefulTimeout = .milliseconds(500)
            var logs = FrontConfiguration.Logs()
            logs.accessLog = nil
            logs.errorLog = "\(directory)/error.log"
            logs.level = "debug"
            let app = FrontConfiguration.Upstream(
                name: "app", servers: [.unix(path: "/run/app.sock"), .tcp(host: "127.0.0.1", port: 9000)],
                maxFails: 0, failTimeout: .hours(1), connectTimeout: .seconds(2), sendTimeout: .seconds(3),
                readTimeout: .seconds(4), keepalive: 8)
            let expected = FrontConfiguration(
                listeners: [.init(host: "127.0.0.1", port: 8080), .init(host: "0.0.0.0", port: 8081)],
                upstreams: [
                    "app": app,
                    "unix:/run/other.sock": .init(
                        name: "unix:/run/other.sock", servers: [.unix(path: "/run/other.sock")]),
                    "127.0.0.1:8000": .init(name: "127.0.0.1:8000", servers: [.tcp(host: "127.0.0.1", port: 8000)]),
                ],
                routes: [
                    .init(hosts: ["example.com", "*.example.com"], pathPrefix: "/api", action: .uwsgi(upstream: "app")),
                    .init(action: .uwsgi(upstream: "unix:/run/other.sock")),
                    .init(pathPrefix: "/web", action: .proxy(upstream: "127.0.0.1:8000")),
                    .init(pathPrefix: "/static", action: .staticFiles(.init(directory: "\(directory)/public"))),
                    .init(pathPrefix: "/old", action: .redirect(location: "https://example.com/", status: 301)),
                    .init(pathPrefix: "/health", action: .fixed(status: 200, body: "ok", contentType: "text/json")),
                    .init(pathPrefix: "/go", action: .redirect(location: "/new", status: 302)),
                ],
                limits: limits, logs: logs,
                pools: [
                    .init(
                        name: "app", args: ["--socket", "/run/app.sock", "--processes", "2", "--app", "hello"],
                        socket: .unix(path: "/run/app.sock")),
                    .init(
                        name: "pool1", args: ["-s", ":3031", "--app", "hello world"],
                        socket: .tcp(host: "127.0.0.1", port: 3031)),
                ],
                eventLoops: 3)
            #expect(config == expected)
        }
    }

    @Test func absentKeysGiveTheDefaults() throws {
        #expect(try ConfigLoader.parse(toml: "") == FrontConfiguration())
        #expect(try ConfigLoader.parse(toml: "[limits]\n[log]\n") == FrontConfiguration())
        let route = try ConfigLoader.parse(toml: "[[route]]\nreturn = 204").routes
        let fixed = FrontConfiguration.Action.fixed(status: 204, body: "", contentType: "text/plain")
        #expect(route == [.init(hosts: [], pathPrefix: "/", action: fixed)])
    }

    @Test(arguments: [
        ("listen = [\"127.0.0.1:8080\", \":8081\"]", ["127.0.0.1:8080", "0.0.0.0:8081"]),
        ("listen = \"[::1]:8080\"", ["[::1]:8080"]),
        ("listen = 8080", ["0.0.0.0:8080"]),
        ("listen = [8080, \"*:8081\"]", ["0.0.0.0:8080", "0.0.0.0:8081"]),
        ("[[listen]]\naddress = \":80\"", ["0.0.0.0:80"]),
    ])
    func listenForms(toml: String, expected: [String]) throws {
        #expect(try ConfigLoader.parse(toml: toml).listeners.map(\.description) == expected)
    }

    @Test func relativeStaticResolvesAgainstTheConfigDirectory() throws {
        try withScratchDirectory { directory in
            let toml = "[[route]]\nstatic = \"public\""
            let config = try ConfigLoader.parse(toml: toml, file: "\(directory)/./keel.toml")
            #expect(config.routes.first?.action == .staticFiles(.init(directory: "\(directory)/public")))
        }
    }

    @Test func inlineAddressesShareOneImplicitUpstream() throws {
        let toml = """
            [[route]]
            path = "/a"
            uwsgi = "unix:/run/a.sock"
            [[route]]
            path = "/b"
            uwsgi = "/run/a.sock"
            """
        let config = try ConfigLoader.parse(toml: toml)
        #expect(config.upstreams.keys.sorted() == ["unix:/run/a.sock"])
        let action = FrontConfiguration.Action.uwsgi(upstream: "unix:/run/a.sock")
        #expect(config.routes.map(\.action) == [action, action])
    }

    // MARK: - Value parsers

    @Test(arguments: [
        ("512", 512), ("0", 0), ("16k", 16 << 10), ("16K", 16 << 10), ("1m", 1 << 20), ("2G", 2 << 30),
    ] as [(String, Int64)])
    func sizes(text: String, bytes: Int64) throws {
        #expect(try ConfigValues.size(text) == bytes)
    }

    @Test(arguments: ["", "k", "1.5m", "-1", "1kb", " 1k", "1t", "99999999999999999999", "9999999999g"])
    func badSizes(text: String) {
        #expect(throws: ConfigValueError.self) { try ConfigValues.size(text) }
    }

    @Test(arguments: [
        ("500ms", .milliseconds(500)), ("30s", .seconds(30)), ("30", .seconds(30)), ("0", .zero),
        ("5m", .minutes(5)), ("1h", .hours(1)), ("1d", .hours(24)), ("10MS", .milliseconds(10)),
    ] as [(String, TimeAmount)])
    func durations(text: String, amount: TimeAmount) throws {
        #expect(try ConfigValues.duration(text) == amount)
    }

    @Test(arguments: ["", "s", "1w", "1.5s", "-1s", "1 s", "99999999999999999999s", "9999999999999d"])
    func badDurations(text: String) {
        #expect(throws: ConfigValueError.self) { try ConfigValues.duration(text) }
    }

    @Test(arguments: [
        ("unix:/run/app.sock", false, "unix:/run/app.sock"), ("/run/app.sock", false, "unix:/run/app.sock"),
        ("unix:rel.sock", false, "unix:rel.sock"), ("127.0.0.1:9000", false, "127.0.0.1:9000"),
        ("localhost:9000", false, "localhost:9000"), ("[::1]:9000", false, "[::1]:9000"),
        ("http://127.0.0.1:8000", true, "127.0.0.1:8000"), ("http://backend", true, "backend:80"),
        ("HTTP://b:81/", true, "b:81"),
    ])
    func serverAddresses(text: String, allowHTTP: Bool, expected: String) throws {
        #expect(try ConfigValues.serverAddress(text, allowHTTP: allowHTTP).description == expected)
    }

    @Test(arguments: [
        ("", "empty address"), ("unix:", "give the socket's path after unix:"), ("localhost", "missing port"),
        (":9000", "missing host"), ("::1:9000", "write an IPv6 address in brackets"), ("[::1", "missing \"]\""),
        ("[::1]9000", "expected :PORT after the IPv6 address"), ("h:0", "the port must be a number from 1 to 65535"),
        ("h:65536", "from 1 to 65535"), ("h:abc", "from 1 to 65535"), ("h st:1", "is not a host name or IP address"),
        ("http://x:1", "http:// is for proxy routes"), ("ftp://x:1", "unsupported scheme"),
    ])
    func badServerAddresses(text: String, message: String) {
        let error = #expect(throws: ConfigValueError.self) { try ConfigValues.serverAddress(text) }
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("127.0.0.1:8080", "127.0.0.1", 8080), (":8081", "0.0.0.0", 8081), ("8080", "0.0.0.0", 8080),
        ("*:80", "0.0.0.0", 80), ("[::1]:8080", "::1", 8080), ("[::]:80", "::", 80),
    ])
    func listeners(text: String, host: String, port: Int) throws {
        #expect(try ConfigValues.listener(text) == .init(host: host, port: port))
    }

    @Test(arguments: ["localhost", "", "0", ":0", "x:99999", "[::1]"])
    func badListeners(text: String) {
        #expect(throws: ConfigValueError.self) { try ConfigValues.listener(text) }
    }

    // MARK: - keel-pool command lines

    @Test(arguments: [
        ("keel-pool --socket /tmp/a.sock --processes 2", ["--socket", "/tmp/a.sock", "--processes", "2"]),
        ("/usr/local/bin/keel-pool -s :3031", ["-s", ":3031"]),
        ("--app 'hello world'", ["--app", "hello world"]),
        ("--app \"say \\\"hi\\\" \\\\ \\n\"", ["--app", "say \"hi\" \\ \\n"]),
        ("'single \\ stays' a\\ b c", ["single \\ stays", "a b", "c"]),
        ("  spaced \t  out\n ", ["spaced", "out"]),
        ("empty '' arg \"\"", ["empty", "", "arg", ""]),
        ("pre'quoted'post", ["prequotedpost"]),
        ("keel-pool", []), ("", []),
        ("my-keel-pool --x", ["my-keel-pool", "--x"]),
    ])
    func splitsCommandLines(line: String, words: [String]) throws {
        #expect(try ConfigLoader.splitCommandLine(line) == words)
    }

    @Test(arguments: [
        ("--app 'hello", "unterminated ' quote; close it"), ("--app \"hello", "unterminated \" quote; close it"),
        ("--app hello\\", "ends with a lone backslash"),
    ])
    func badCommandLines(line: String, message: String) {
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.splitCommandLine(line) }
        #expect(error?.message == message)
        #expect(error?.description == "command line: \(message)")
    }

    @Test(arguments: [
        (["--socket", "/tmp/a.sock"], .unix(path: "/tmp/a.sock")),
        (["--socket=unix:/tmp/a.sock"], .unix(path: "/tmp/a.sock")),
        (["-s", "app.sock"], .unix(path: "app.sock")),
        (["-s", ":3031"], .tcp(host: "127.0.0.1", port: 3031)),
        (["-s", "0.0.0.0:3031"], .tcp(host: "127.0.0.1", port: 3031)),
        (["-s", "[::]:3031"], .tcp(host: "::1", port: 3031)),
        (["--app", "x", "-s", "10.0.0.1:3031"], .tcp(host: "10.0.0.1", port: 3031)),
        (["--socket-timeout", "4", "--socket", "/a.sock", "--socket", "/b.sock"], .unix(path: "/a.sock")),
        (["--http-socket", ":8000"], nil), (["--socket"], nil), (["--socket", "nohost"], nil),
        (["--", "--socket", "/a.sock"], nil), ([], nil),
    ] as [([String], FrontConfiguration.ServerAddress?)])
    func poolSockets(args: [String], socket: FrontConfiguration.ServerAddress?) {
        #expect(ConfigLoader.poolSocket(fromArgs: args) == socket)
    }
}
