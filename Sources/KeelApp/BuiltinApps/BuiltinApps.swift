#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// The apps `--app NAME` selects: small, dependency-free, for tests and benchmarks.
public enum BuiltinApps {
    public static let all: [(name: String, summary: String, handler: any Handler)] = [
        ("hello", "200 text/plain \"Hello world!\\n\"", HelloApp()),
        ("echo", "the request body back, with the request's Content-Type", EchoApp()),
        ("sleep", "blocks its thread ?ms=N milliseconds (default 1000), then 200", SleepApp()),
        ("env", "the request's vars as a JSON object", EnvApp()),
        ("crash", "kills its own worker process (SIGKILL), to test respawning", CrashApp()),
        ("flaky", "like hello, but ?crash=1 kills its worker (SIGKILL): chaos for the lifecycle bench", FlakyApp()),
        ("status", "answers with the status in the path, /404 → 404 (for testing proxies)", StatusApp()),
        ("leak", "keeps ?mb=N (default 1) MiB allocated per request for good, to test --reload-on-rss", LeakApp()),
        ("stream", "streams ?chunks=N (default 4) chunks of ?size=S bytes (default 1024), length unknown up front; ?text=1 for text/plain letters",
         StreamApp()),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) -> (any Handler)? {
        all.first { $0.name == name }?.handler
    }
}

public struct HelloApp: Handler {
    static let body = ByteBuffer(string: "Hello world!\n")
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        Response(status: 200, headers: [("Content-Type", "text/plain")], body: .bytes(Self.body))
    }
}

public struct EchoApp: Handler {
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        let type = request["CONTENT_TYPE"].flatMap { $0.isEmpty ? nil : $0 } ?? "application/octet-stream"
        return Response(status: 200, headers: [("Content-Type", type)], body: .bytes(request.body))
    }
}

public struct SleepApp: Handler {
    /// Longest sleep accepted, so a typo cannot park a thread for days.
    public static let maxMilliseconds = 600_000
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        var ms = 1000
        if let raw = request.queryParameter("ms") {
            guard let value = Int(raw), value >= 0, value <= Self.maxMilliseconds else {
                throw HTTPError(400, "sleep: ?ms= must be an integer from 0 to \(Self.maxMilliseconds)\n")
            }
            ms = value
        }
        var request = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
        var remaining = timespec()
        // Resume after signal interruptions so the sleep is the full duration.
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
        return Response(status: 200, "slept \(ms) ms\n")
    }
}

public struct EnvApp: Handler {
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        var json = "{"
        for (index, v) in request.vars.enumerated() {
            if index > 0 { json += "," }
            json += "\n  " + JSON.quote(v.name) + ": " + JSON.quote(v.value)
        }
        json += "\n}\n"
        return Response(status: 200, contentType: "application/json", json)
    }
}

public struct FlakyApp: Handler {
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        if request.queryParameter("crash") == "1" { return try CrashApp().handle(request) }
        return try HelloApp().handle(request)
    }
}

public struct StatusApp: Handler {
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        let digits = request.path.dropFirst()
        guard digits.count == 3, let status = Int(digits), (200...599).contains(status) else {
            throw HTTPError(400, "status: ask for /NNN with NNN from 200 to 599, e.g. /404\n")
        }
        // 204 and 304 carry no body (RFC 9110); every other status says what it is.
        if status == 204 || status == 304 { return Response(status: status, headers: [], body: .bytes(ByteBuffer())) }
        return Response(status: status, "status \(status)\n")
    }
}

public struct StreamApp: Handler {
    /// Bounds so a typo cannot ask for an endless response.
    public static let maxChunks = 100_000
    public static let maxChunkSize = 1 << 20
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        let chunks = try Self.parameter(request, "chunks", default: 4, max: Self.maxChunks)
        let size = try Self.parameter(request, "size", default: 1024, max: Self.maxChunkSize)
        // ?text=1: a text body (letters), for compression tests; otherwise bytes.
        let isText = request.queryParameter("text") == "1"
        let type = isText ? "text/plain" : "application/octet-stream"
        return Response(status: 200, headers: [("Content-Type", type)], body: .stream { writer in
            // Chunk i is filled with the byte i % 256, so a reordered or lost chunk is visible to a test.
            for index in 0..<chunks {
                let byte = isText ? UInt8(ascii: "a") + UInt8(index % 26) : UInt8(truncatingIfNeeded: index)
                try writer.write(ByteBuffer(repeating: byte, count: size))
            }
        })
    }

    static func parameter(_ request: Request, _ name: String, default value: Int, max: Int) throws -> Int {
        guard let raw = request.queryParameter(name) else { return value }
        guard let number = Int(raw), number >= 0, number <= max else {
            throw HTTPError(400, "stream: ?\(name)= must be an integer from 0 to \(max)\n")
        }
        return number
    }
}

public struct LeakApp: Handler {
    /// What every request keeps, on purpose: the worker's memory only grows until it is recycled.
    nonisolated(unsafe) static var kept: [[UInt8]] = []
    static let lock = AppMutex()
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        let mb = try StreamApp.parameter(request, "mb", default: 1, max: 64)
        // Filled, not just reserved, so the pages count in the resident set.
        let block = [UInt8](repeating: 0xA5, count: mb << 20)
        Self.lock.withLock { Self.kept.append(block) }
        return Response(status: 200, "kept \(mb) MiB more\n")
    }
}

/// A tiny mutex so the leak app is safe on several threads without pulling NIOConcurrencyHelpers in.
final class AppMutex: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}

public struct CrashApp: Handler {
    public init() {}
    public func handle(_ request: Request) throws -> Response {
        kill(getpid(), SIGKILL)
        fatalError("unreachable: SIGKILL was sent to self")
    }
}

public enum JSON {
    /// A JSON string literal for `s`, escaping quotes, backslashes and control characters.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
