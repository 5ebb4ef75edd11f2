// swift-tools-version:6.0
import Foundation
import PackageDescription

let package = Package(
    name: "Keel",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "keel", targets: ["keel"]),
        .executable(name: "keel-pool", targets: ["keel-pool"]),
        // keel-pool's worker runtime as a Python extension module, loaded by the app's own interpreter.
        .library(name: "KeelPoolWorker", type: .dynamic, targets: ["KeelPoolWorker"]),
        .library(name: "UWSGI", targets: ["UWSGI"]),
        .library(name: "KeelApp", targets: ["KeelApp"]),
        .library(name: "KeelPool", targets: ["KeelPool"]),
        .library(name: "KeelFront", targets: ["KeelFront"]),
        .library(name: "KeelTLS", targets: ["KeelTLS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        // The system OpenSSL (libssl-dev), with static inline wrappers of the macros KeelTLS needs.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // TLS on the system OpenSSL: the SwiftNIO handler over memory BIOs, contexts, SNI, ALPN, resumption.
        .target(
            name: "KeelTLS",
            dependencies: [
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // Thin C shims for what Swift's Glibc overlay hides (prctl, posix_spawn closefrom).
        .target(name: "CKeelSys"),
        // The uwsgi wire format: packet encode/decode, limits, errors. No sockets.
        .target(name: "UWSGI", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // The public app API and the built-in apps. Knows nothing of sockets.
        .target(name: "KeelApp", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // Master (bind, spawn, supervise) and worker runtime (accept, speak uwsgi/HTTP, run apps).
        .target(
            name: "KeelPool",
            dependencies: [
                "UWSGI", "KeelApp", "KeelHTTP", "KeelSystem", "CKeelSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // RFC 6455 framing for ASGI apps' WebSockets (frame parsing is not written again here).
                .product(name: "NIOWebSocket", package: "swift-nio"),
                // The master's /metrics (--metrics): swift-metrics' API, exposed by swift-prometheus.
                "KeelMetrics", .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // swift-metrics over swift-prometheus for both servers, with the help text promtool requires.
        .target(
            name: "KeelMetrics",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // CPython's C API, compiled against Debian's 3.11 headers but linked by no library target: the worker library
        // takes it from the interpreter that loads it (3.9 to 3.13), keel-pool and the tests link libpython3.11.
        // Only KeelWSGI imports it (its module map clashes with COpenSSL's).
        .systemLibrary(name: "CPython", providers: [.apt(["libpython3.11-dev"])]),
        // WSGI apps on embedded CPython: interpreter start, app loading, environ, responses, the GIL.
        .target(
            name: "KeelWSGI",
            dependencies: ["CPython", "CKeelSys", "KeelApp", "KeelHTTP", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // Process spawning both servers use (posix_spawn with fd moves, closefrom and signal defaults).
        .target(name: "KeelSystem", dependencies: ["CKeelSys"]),
        // HTTP/1 rules both servers share: request-head checks, target parsing, CGI vars, percent-decoding,
        // keep-alive, protocol error answers. NIO only (no Foundation): it sits on the per-request path.
        .target(
            name: "KeelHTTP",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")]
        ),
        // The front proxy: config, listeners, router, upstreams, static files, logs, the bundle supervisor.
        .target(
            name: "KeelFront",
            dependencies: [
                "UWSGI", "KeelHTTP", "KeelSystem", "KeelTLS", "CKeelSys", "KeelApp",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                // gzip on the system zlib (links libz; NIOHTTPCompression would vendor its own).
                .product(name: "CompressNIO", package: "compress-nio"),
                // keel's /metrics ([metrics] listen): swift-metrics' API, exposed by swift-prometheus.
                "KeelMetrics", .product(name: "CoreMetrics", package: "swift-metrics"),
                // HTTP/2 at the front (ALPN h2, h2c): framing, HPACK, flow control and its DoS limits are NIO's.
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        // `keel-pool tune`: the built-in load generator, the shape search and its reports. Runs keel-pool as a child.
        .target(
            name: "KeelTune",
            dependencies: [
                "KeelPool", "KeelSystem", "CKeelSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Depends on keel-pool so `swift run keel` builds the pool binary keel spawns (it looks beside itself), and on
        // KeelPoolCommands for `keel pool`, which runs the same pool from keel's own binary when none is beside it.
        .executableTarget(
            name: "keel",
            dependencies: [
                "KeelFront", "keel-pool", "KeelPoolCommands",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // Linking keel-pool's module in (the dependency above) brings its embedded-Python fallback along.
            linkerSettings: [.linkedLibrary("python3.11")]
        ),
        // keel-pool's flags (uWSGI's names), the worker command, and the choice of the interpreter that hosts workers.
        .target(
            name: "KeelPoolCLI",
            dependencies: [
                "KeelPool", "KeelApp", "KeelWSGI", "KeelSystem", "CKeelSys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The extension module `keel_pool_worker` (libKeelPoolWorker.so): a WSGI worker inside the app's interpreter.
        // Its C API symbols stay undefined until the interpreter that loads it resolves them (SwiftPM links with -z defs).
        .target(
            name: "KeelPoolWorker", dependencies: ["KeelPoolCLI", "CPython"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--allow-shlib-undefined", "-Xlinker", "--unresolved-symbols=ignore-all"])]
        ),
        // keel-pool's command line (run, check, stats, tune and the hidden steps), shared by keel-pool and `keel pool`.
        .target(
            name: "KeelPoolCommands",
            dependencies: [
                "KeelPoolCLI", "KeelPool", "KeelApp", "KeelTune", "KeelSystem", "KeelWSGI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "keel-pool",
            dependencies: ["KeelPoolCommands"],
            // The embedded fallback: WSGI on Debian's libpython3.11 when libKeelPoolWorker.so is not beside keel-pool.
            linkerSettings: [.linkedLibrary("python3.11")]
        ),
        .testTarget(
            name: "UWSGITests",
            dependencies: ["UWSGI", .product(name: "NIOTestUtils", package: "swift-nio")]
        ),
        .testTarget(name: "KeelAppTests", dependencies: ["KeelApp"]),
        .testTarget(
            name: "KeelTuneTests",
            dependencies: ["KeelTune", .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "KeelHTTPTests", dependencies: ["KeelHTTP"]),
        .testTarget(
            name: "KeelTLSTests",
            dependencies: ["KeelTLS", "COpenSSL", .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(
            name: "KeelFrontTests",
            dependencies: [
                "KeelFront", .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .testTarget(
            name: "KeelWSGITests", dependencies: ["KeelWSGI", "KeelApp"], linkerSettings: [.linkedLibrary("python3.11")]
        ),
        .testTarget(
            name: "KeelPoolTests",
            dependencies: [
                "KeelPool", "KeelApp", .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        // Runs the built binaries (and the real nginx) on free ports and temp unix paths.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["keel", "keel-pool", "UWSGI", "CKeelSys", .product(name: "NIOCore", package: "swift-nio")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets for the parsers that read another process's bytes; only with KEEL_FUZZ=1 (Tests/Fuzz/run.sh),
// so an ordinary build never needs the fuzzer runtime.
if ProcessInfo.processInfo.environment["KEEL_FUZZ"] == "1" {
    // The parsers themselves carry the coverage instrumentation the fuzzer steers by.
    for target in package.targets where target.name == "UWSGI" {
        target.swiftSettings = [.unsafeFlags(["-sanitize=fuzzer,address"])]
    }
    for name in ["UWSGIResponseParserFuzz", "UWSGIRequestParserFuzz"] {
        package.targets.append(
            .executableTarget(
                name: name, dependencies: ["UWSGI", .product(name: "NIOCore", package: "swift-nio")],
                path: "Tests/Fuzz/\(name)",
                swiftSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-parse-as-library"])],
                linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]))
        package.products.append(.executable(name: name, targets: [name]))
    }
}
