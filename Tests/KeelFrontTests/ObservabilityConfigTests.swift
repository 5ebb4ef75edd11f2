import NIOCore
import NIOHTTP1
import Testing

@testable import KeelFront

/// `[metrics]` and `[status]`: what the loader accepts, and the one-line error naming the key for what it refuses.
@Suite struct ObservabilityConfigTests {
    static let route = "\n[[route]]\nreturn = 200\n"

    static let errorCases: [ConfigErrorCase] = [
        .init("[metrics]\nlisten = \"127.0.0.1\"", "metrics.listen", "missing port"),
        .init("[metrics]\nlisten = \"127.0.0.1:70000\"", "metrics.listen", "the port must be a number from 1 to 65535"),
        .init("[metrics]\nlisten = 9100", "metrics.listen", "expected a string"),
        .init("[metrics]\npath = \"/m\"", "metrics.path", "unknown key"),
        .init("[metrics]\n", "metrics", "missing listen"),
        .init(
            "listen = \"127.0.0.1:9100\"\n[metrics]\nlisten = \"127.0.0.1:9100\"" + route, "metrics.listen",
            "is also listen[0]"),
        .init("[status]\npath = \"keel/status\"" + route, "status.path", "must start with \"/\""),
        .init("[status]\npath = \"/keel status\"" + route, "status.path", "may not hold spaces"),
        .init(
            "[status]\nallow = [\"10.0.0.0/8\", \"10.0.0/8\"]", "status.allow[1]", "not an IP address or CIDR network"),
        .init(
            "[status]\nallow = [\"10.0.0.0/33\"]", "status.allow[0]", "prefix length after \"/\" must be from 0 to 32"),
        .init("[status]\nallow = [\"::1/129\"]", "status.allow[0]", "from 0 to 128"),
        .init("[status]\nallow = [\"10.1.0.0/8\"]", "status.allow[0]", "did you mean 10.0.0.0/8?"),
        .init("[status]\nallow = [1]", "status.allow[0]", "expected a string"),
        .init("[status]\nalow = []", "status.alow", "did you mean \"allow\"?"),
        .init(
            "[status.pools]\nother = \"localhost\"", "status.pools.other", "expected a unix socket path or HOST:PORT"),
        .init(
            "[status.pools]\napp = \"/tmp/s.sock\"\n[[pool]]\nname = \"app\"\nargs = [\"--socket\", \"/tmp/a.sock\"]"
                + route,
            "status.pools.app", "is a [[pool]] keel starts"),
    ]

    @Test(arguments: errorCases)
    func refusedKeysAreNamed(_ testCase: ConfigErrorCase) throws {
        let error = try #require(parseError(testCase.toml), "no error for \(testCase.toml)")
        #expect(error.key == testCase.key)
        #expect(error.message.contains(testCase.message), "\(error.message)")
        #expect(!error.description.contains("\n"))
    }

    @Test func acceptedSectionsAreRead() throws {
        let config = try ConfigLoader.parse(
            toml: """
                [metrics]
                listen = "127.0.0.1:9100"
                [status]
                path = "/_status"
                allow = ["10.0.0.0/8", "192.168.1.7", "::1"]
                [status.pools]
                outside = "127.0.0.1:9191"
                other = "/run/other-stats.sock"
                [[route]]
                return = 200
                """)
        #expect(config.metrics?.listener == .init(host: "127.0.0.1", port: 9100))
        let status = try #require(config.status)
        #expect(status.path == "/_status")
        #expect(status.jsonPath == "/_status.json")
        #expect(status.allow.map(\.description) == ["10.0.0.0/8", "192.168.1.7/32", "::1/128"])
        #expect(
            status.pools == [
                "outside": .tcp(host: "127.0.0.1", port: 9191), "other": .unix(path: "/run/other-stats.sock"),
            ])
    }

    @Test func statusDefaultsToLoopbackAtKeelStatus() throws {
        let config = try ConfigLoader.parse(toml: "[status]\n" + Self.route)
        let status = try #require(config.status)
        #expect(status.path == "/keel/status")
        #expect(status.allow == AddressRange.loopback)
        #expect(config.metrics == nil)
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.200.3.4", true), ("10.0.0.0/8", "11.0.0.1", false),
        ("127.0.0.0/8", "::ffff:127.0.0.1", true),
        ("::1/128", "::1", true), ("::1/128", "127.0.0.1", false), ("127.0.0.0/8", "::1", false),
        ("192.168.1.7", "192.168.1.7", true), ("192.168.1.7", "192.168.1.8", false), ("0.0.0.0/0", "8.8.8.8", true),
        ("fd00::/8", "fd12:3456::1", true), ("fd00::/8", "fe80::1", false), ("10.0.0.0/8", "unix:", false),
    ])
    func addressRangeMatches(_ range: String, _ client: String, _ expected: Bool) throws {
        #expect(try AddressRange(range).contains(client) == expected)
    }

    @Test func statusPageAnswersOnlyItsPathsAndOnlyAllowedClients() throws {
        var configuration = FrontConfiguration.Status()
        configuration.allow = [try AddressRange("10.0.0.0/8")]
        let board = StatusBoard()
        board.publish("{\"keel\": {}, \"pools\": []}")
        let page = StatusPage(configuration: configuration, board: board)
        #expect(page.reply(path: "/", method: .GET, client: "10.1.1.1") == nil)
        #expect(page.reply(path: "/keel/statusx", method: .GET, client: "10.1.1.1") == nil)
        #expect(page.reply(path: "/keel/status", method: .GET, client: "127.0.0.1")?.status == .forbidden)
        #expect(page.reply(path: "/keel/status.json", method: .GET, client: "127.0.0.1")?.status == .forbidden)
        let html = try #require(page.reply(path: "/keel/status", method: .GET, client: "10.1.1.1"))
        #expect(html.status == .ok)
        #expect(html.headers["Content-Type"] == ["text/html; charset=utf-8"])
        let json = try #require(page.reply(path: "/keel/status.json", method: .GET, client: "10.1.1.1"))
        #expect(json.headers["Content-Type"] == ["application/json"])
        #expect(page.reply(path: "/keel/status", method: .POST, client: "10.1.1.1")?.status == .methodNotAllowed)
    }

    @Test func pageIsSelfContained() {
        let html = StatusPageHTML.page(jsonPath: "/keel/status.json")
        #expect(html.contains("var jsonPath = \"/keel/status.json\";"))
        #expect(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("@import"))
        #expect(!html.contains("innerHTML"), "client-sent request lines must reach the page as text only")
    }

    @Test func bundlePoolsGetAPrivateStatsSocketUnlessTheyHaveOne() throws {
        var config = FrontConfiguration()
        config.pools = [
            .init(
                name: "own", args: ["--socket", "/tmp/a.sock", "--stats", "127.0.0.1:9191"],
                socket: .unix(path: "/tmp/a.sock")),
            .init(
                name: "added", args: ["--socket", "/tmp/b.sock", "--", "app:extra"], socket: .unix(path: "/tmp/b.sock")),
        ]
        var status = FrontConfiguration.Status()
        status.pools = ["outside": .tcp(host: "127.0.0.1", port: 9292)]
        config.status = status
        let sources = try PoolStatsSources(config)
        defer { sources.removeDirectory() }
        let directory = try #require(sources.directory)
        #expect(sources.pools[0].args == config.pools[0].args)
        #expect(
            sources.pools[1].args == [
                "--socket", "/tmp/b.sock", "--stats", "\(directory)/pool1.sock", "--", "app:extra",
            ])
        #expect(sources.sources.map(\.name) == ["own", "added", "outside"])
        #expect(
            sources.sources.map(\.address) == [
                .tcp(host: "127.0.0.1", port: 9191), .unix(path: "\(directory)/pool1.sock"),
                .tcp(host: "127.0.0.1", port: 9292),
            ])
        config.status = nil
        let none = try PoolStatsSources(config)
        #expect(none.directory == nil && none.sources.isEmpty && none.pools == config.pools)
    }
}

/// The handles requests record into: bounded labels, exact counts, and a sound exposition.
@Suite struct FrontMetricsTests {
    @Test(arguments: [
        (HTTPMethod.GET, 0), (.HEAD, 1), (.POST, 2), (.PUT, 3), (.DELETE, 4), (.PATCH, 5), (.OPTIONS, 6),
        (.RAW(value: "BREW"), 7), (.PROPFIND, 7), (.CONNECT, 7),
    ])
    func unknownMethodsShareOneLabel(_ method: HTTPMethod, _ index: Int) {
        #expect(FrontMetrics.methodIndex(method) == index)
    }

    @Test(arguments: [(101, 0), (200, 1), (204, 1), (304, 2), (404, 3), (499, 3), (502, 4), (0, 0), (600, 4)])
    func statusClasses(_ status: Int, _ index: Int) {
        #expect(FrontMetrics.statusClassIndex(status) == index)
    }

    @Test func requestsCountExactlyOncePerRequest() throws {
        var config = FrontConfiguration(routes: [
            .init(pathPrefix: "/api", action: .fixed(status: 200, body: "", contentType: "text/plain")),
            .init(
                hosts: ["example.com"], pathPrefix: "/",
                action: .fixed(status: 200, body: "", contentType: "text/plain")),
        ])
        config.upstreams = ["app": .init(name: "app", servers: [.unix(path: "/tmp/x.sock")])]
        let metrics = FrontMetrics()
        let runtime = RuntimeMetrics(front: metrics, routes: metrics.resolve(config))
        let upstream = metrics.upstreamMetrics(config.upstreams["app"]!)
        let loop = LoopMetrics()
        for _ in 0..<7 {
            loop.requestEnded(
                runtime, route: 0, method: .GET, status: 200, durationNanoseconds: 2_000_000,
                upstream: (upstream, 1_000_000),
                bodyBytesIn: 0, bodyBytesOut: 10)
        }
        for _ in 0..<3 {
            loop.requestEnded(
                runtime, route: 1, method: .RAW(value: "BREW"), status: 418, durationNanoseconds: 1, upstream: nil,
                bodyBytesIn: 5, bodyBytesOut: 0)
        }
        loop.requestEnded(
            runtime, route: nil, method: .GET, status: 404, durationNanoseconds: 1, upstream: nil, bodyBytesIn: 0,
            bodyBytesOut: 0)
        upstream.failures[0].increment()
        loop.flush()
        let text = String(decoding: metrics.exposition(connections: 3), as: UTF8.self)
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"keel_http_requests_total{route="/api",method="GET",status="2xx"} 7"#))
        #expect(lines.contains(#"keel_http_requests_total{route="example.com/",method="OTHER",status="4xx"} 3"#))
        #expect(lines.contains(#"keel_http_requests_total{route="none",method="GET",status="4xx"} 1"#))
        #expect(lines.contains(#"keel_http_request_duration_seconds_count{route="/api"} 7"#))
        #expect(lines.contains(#"keel_upstream_response_seconds_count{upstream="app"} 7"#))
        #expect(lines.contains(#"keel_upstream_failures_total{upstream="app",server="unix:/tmp/x.sock"} 1"#))
        #expect(lines.contains("keel_response_body_bytes_total 70"))
        #expect(lines.contains("keel_request_body_bytes_total 15"))
        #expect(lines.contains("keel_connections_active 3.0"))
        // A reload resolves the same series again: counts carry on.
        let again = RuntimeMetrics(front: metrics, routes: metrics.resolve(config))
        loop.requestEnded(
            again, route: 0, method: .GET, status: 201, durationNanoseconds: 1, upstream: nil, bodyBytesIn: 0,
            bodyBytesOut: 0)
        let after = String(decoding: metrics.exposition(connections: 0), as: UTF8.self)
        #expect(after.contains(#"keel_http_requests_total{route="/api",method="GET",status="2xx"} 8"#))
    }

    @Test func samplesWaitForTheFlush() {
        let config = FrontConfiguration(routes: [
            .init(pathPrefix: "/", action: .fixed(status: 200, body: "", contentType: "text/plain"))
        ])
        let metrics = FrontMetrics()
        let runtime = RuntimeMetrics(front: metrics, routes: metrics.resolve(config))
        let loop = LoopMetrics()
        loop.requestEnded(
            runtime, route: 0, method: .GET, status: 200, durationNanoseconds: 1, upstream: nil, bodyBytesIn: 0,
            bodyBytesOut: 0)
        let before = String(decoding: metrics.exposition(connections: 0), as: UTF8.self)
        #expect(before.contains(#"keel_http_request_duration_seconds_count{route="/"} 0"#))
        loop.flush()
        let after = String(decoding: metrics.exposition(connections: 0), as: UTF8.self)
        #expect(after.contains(#"keel_http_request_duration_seconds_count{route="/"} 1"#))
    }
}
