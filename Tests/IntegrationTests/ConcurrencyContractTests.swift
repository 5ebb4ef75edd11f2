import Foundation
import Testing

/// The seed's experiment: two `sleep?ms=400` requests sent together. One process with one thread
/// serialises them; two threads, or two processes, run them side by side.
/// Serialised (≥ 800 ms) is a lower bound and cannot pass by luck; overlap is checked with 350 ms spare.
@Suite("--processes × --threads contract", .serialized, .timeLimit(.minutes(2)))
struct ConcurrencyContractTests {
    /// Sends both requests at once (on two connections, from two threads of their own, so no shared
    /// thread pool can serialise the client); returns when the last answer arrived, in seconds.
    static func twoSleepsTogether(_ send: @escaping @Sendable () throws -> Int) throws -> Double {
        let start = Date()
        let statuses = Statuses()
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<2 {
            Thread {
                statuses.add((try? send()) ?? -1)
                done.signal()
            }.start()
        }
        for _ in 0..<2 { #expect(done.wait(timeout: .now() + 20) == .success) }
        #expect(statuses.all == [200, 200])
        return Date().timeIntervalSince(start)
    }

    final class Statuses: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Int] = []
        func add(_ value: Int) { lock.withLock { values.append(value) } }
        var all: [Int] { lock.withLock { values } }
    }

    @Test(arguments: [
        (1, 1, true), (1, 2, false), (2, 1, false), (3, 1, false),
    ])
    func httpSocket(processes: Int, threads: Int, serialises: Bool) throws {
        let pool = try PoolUnderTest(["--app", "sleep", "--processes", "\(processes)", "--threads", "\(threads)"])
        let port = pool.httpPort!
        let elapsed = try Self.twoSleepsTogether { try HTTPClient.get(port: port, "/?ms=400").status }
        if serialises {
            #expect(elapsed >= 0.8, "\(processes)×\(threads) must serialise: \(elapsed)s")
        } else {
            #expect(elapsed < 0.75, "\(processes)×\(threads) must overlap: \(elapsed)s")
        }
        try pool.stop()
    }

    @Test(arguments: [(1, 1, true), (1, 2, false), (2, 1, false)])
    func uwsgiSocket(processes: Int, threads: Int, serialises: Bool) throws {
        let pool = try PoolUnderTest(
            http: false, uwsgi: true, ["--app", "sleep", "--processes", "\(processes)", "--threads", "\(threads)"])
        let path = pool.socketPath!
        let elapsed = try Self.twoSleepsTogether {
            try UWSGIClient.parse(try UWSGIClient.exchange(path: path, vars: UWSGIClient.vars(uri: "/?ms=400"))).status
        }
        if serialises {
            #expect(elapsed >= 0.8, "\(processes)×\(threads) must serialise: \(elapsed)s")
        } else {
            #expect(elapsed < 0.75, "\(processes)×\(threads) must overlap: \(elapsed)s")
        }
        try pool.stop()
    }
}
