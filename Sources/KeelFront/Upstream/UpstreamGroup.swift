import NIOConcurrencyHelpers
import Synchronization
import NIOCore

/// A named set of backend servers with round-robin choice and passive health, shared by every event loop:
/// a server that fails `maxFails` connects in a row is skipped for `failTimeout` (nginx's `max_fails`/`fail_timeout`).
/// When every server is down, the one that comes back soonest is tried anyway, as nginx does, so an outage of
/// all servers recovers as soon as one does.
final class UpstreamGroup: Sendable {
    let configuration: FrontConfiguration.Upstream
    /// Each server's socket address, resolved once at load: a connect per request must not resolve a name per request.
    /// nil when a host name did not resolve then (the connect resolves it, and fails with the reason).
    let socketAddresses: [SocketAddress?]
    private let health: NIOLockedValueBox<Health>
    /// What each server was last seen to speak, so the error log says it once per server (and again if it changes).
    private let wireNotes: [WireNote]

    private final class WireNote: Sendable {
        /// 0 unknown, 1 keel wire, 2 plain uwsgi.
        let kind = Atomic<UInt8>(0)
    }

    private struct Health {
        var next = 0
        var failures: [Int]
        var downUntil: [NIODeadline]
    }

    /// Failure counters per server and the response-time histogram; nil when metrics are off.
    let metrics: UpstreamMetrics?

    init(configuration: FrontConfiguration.Upstream, metrics: UpstreamMetrics? = nil) {
        self.configuration = configuration
        self.metrics = metrics
        let count = configuration.servers.count
        self.socketAddresses = configuration.servers.map { server in
            switch server {
            case .unix(let path): try? SocketAddress(unixDomainSocketPath: path)
            case .tcp(let host, let port): try? SocketAddress.makeAddressResolvingHost(host, port: port)
            }
        }
        self.wireNotes = configuration.servers.map { _ in WireNote() }
        self.health = NIOLockedValueBox(Health(failures: Array(repeating: 0, count: count), downUntil: Array(repeating: .distantPast, count: count)))
    }

    var name: String { configuration.name }

    /// The next server to try, skipping `excluding` (the one that just failed) when another exists. A retry does
    /// not move the round-robin turn: it would hand the next request back to the server that just failed.
    func pickServer(excluding: Int? = nil, now: NIODeadline = .now()) -> Int? {
        let count = configuration.servers.count
        if count == 0 { return nil }
        return health.withLockedValue { health in
            var soonest: (index: Int, until: NIODeadline)?
            for step in 0..<count {
                let index = (health.next + step) % count
                if index == excluding, count > 1 { continue }
                if health.downUntil[index] <= now {
                    if excluding == nil { health.next = (index + 1) % count }
                    return index
                }
                if soonest == nil || health.downUntil[index] < soonest!.until { soonest = (index, health.downUntil[index]) }
            }
            return soonest?.index
        }
    }

    func server(_ index: Int) -> FrontConfiguration.ServerAddress { configuration.servers[index] }

    /// Records a failed attempt (a connect, a timeout, a close or an invalid answer before the response: nginx's
    /// `error timeout invalid_header`); returns true when this failure marked the server down (it was up).
    @discardableResult
    func recordFailure(_ index: Int, now: NIODeadline = .now()) -> Bool {
        // nginx: a group's only server is never considered unavailable.
        guard configuration.maxFails > 0, configuration.servers.count > 1 else { return false }
        return health.withLockedValue { health in
            health.failures[index] += 1
            if health.failures[index] >= configuration.maxFails {
                health.failures[index] = 0
                // Failures of requests in flight when it went down extend the time out but are not news.
                let wasDown = health.downUntil[index] > now
                health.downUntil[index] = now + configuration.failTimeout
                return !wasDown
            }
            return false
        }
    }

    /// A failure the metrics count by server: a connect, a timeout or a malformed response.
    func countFailure(_ index: Int) {
        metrics?.failures[index].increment()
    }

    func recordSuccess(_ index: Int) {
        health.withLockedValue { health in
            if health.failures[index] != 0 { health.failures[index] = 0 }
        }
    }

    /// A uwsgi server answered: on the keel wire (keel-pool) or in plain uwsgi (uWSGI, or keepalive = 0).
    func noteWire(_ index: Int, keel: Bool) {
        let kind: UInt8 = keel ? 1 : 2
        let note = wireNotes[index]
        guard note.kind.load(ordering: .relaxed) != kind, note.kind.exchange(kind, ordering: .relaxed) != kind else { return }
        let server = "upstream \"\(name)\" (\(configuration.servers[index]))"
        if keel {
            FrontLog.info("\(server) speaks the keel wire: connections are kept (keepalive \(configuration.keepalive) per event loop)")
        } else if configuration.keepalive == 0 {
            FrontLog.info("\(server): one connection per request (keepalive = 0)")
        } else {
            FrontLog.info("\(server) answers plain uwsgi (not keel-pool): one connection per request")
        }
    }

    func isDown(_ index: Int, now: NIODeadline = .now()) -> Bool {
        health.withLockedValue { $0.downUntil[index] > now }
    }
}
