import KeelApp

#if canImport(Glibc)
import Glibc
#endif

/// `--stats`: like uWSGI's stats server, each connection gets one JSON document and is closed.
/// The master polls it on its tick (it has no event loop), so a reply takes up to 100 ms.
final class StatsServer {
    private let socket: ListenSocket

    init(address: ListenAddress) throws(PoolError) {
        socket = try ListenSocket.bind(address, wire: .http, backlog: 16, chmod: nil, flag: "--stats")
        let flags = fcntl(socket.fd, F_GETFL)
        _ = fcntl(socket.fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Answers every waiting client with `document()` (built once, only if someone asked).
    func serve(_ document: () -> String) {
        var text: String?
        while true {
            let client = accept4Blocking(socket.fd)
            guard client >= 0 else { return }
            if text == nil { text = document() }
            // A client that does not read must not stall the master: one second, then give up.
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            writeAll(client, text!)
            Glibc.close(client)
        }
    }

    func close() { socket.close() }

    /// accept4 with a blocking, close-on-exec client socket (the listener itself is non-blocking).
    private func accept4Blocking(_ fd: Int32) -> Int32 {
        let client = accept(fd, nil, nil)
        if client >= 0 { _ = fcntl(client, F_SETFD, FD_CLOEXEC) }
        return client
    }
}

/// The other side of `--stats`: one document read from a stats server (`keel-pool stats`, `keel-pool tune`).
public enum StatsClient {
    public static func fetch(_ address: ListenAddress, timeoutSeconds: Int = 5) throws(PoolError) -> String {
        let fd = try address.connectClient()
        defer { Glibc.close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension PoolMaster {
    /// The stats document: the pool, its sockets, and per worker and thread what the scoreboard says.
    func statsDocument(now: Int64) -> String {
        let respawns = respawnsByID
        let listsIdleRows = !configuration.isAsync
        var workers: [String] = []
        for slot in slots.sorted(by: { ($0.id, $0.generation) < ($1.id, $1.generation) }) {
            guard let pid = slot.pid else { continue }
            let status: String
            switch slot.state {
            case .starting: status = "starting"
            case .stopping: status = "stopping"
            default: status = "idle"
            }
            var fields = [
                "\"id\": \(slot.id)", "\"pid\": \(pid)", "\"generation\": \(slot.generation)",
                "\"respawns\": \(respawns[slot.id] ?? 0)", "\"harakiri_count\": \(slot.harakiriCount)",
            ]
            var threads: [String] = []
            var busy = false
            if let record = slot.scoreboardSlot {
                let view = scoreboard.read(record)
                fields.append("\"requests\": \(view.requests)")
                // uwsgi sockets: connections accepted, and persistent keel-wire ones open now.
                fields.append("\"connections\": \(view.accepted)")
                fields.append("\"persistent_connections\": \(view.persistent)")
                // The master's once-a-second health check records RSS; stats read it rather than /proc again.
                fields.append("\"rss_mib\": \(view.rss > 0 ? String(view.rss >> 20) : "null")")
                let average = view.requests > 0 ? view.busyMicros / view.requests : 0
                fields.append("\"avg_rt_us\": \(average)")
                fields.append("\"last_heartbeat_ms\": \(view.heartbeat > 0 ? String(now - view.heartbeat) : "null")")
                var inFlight = 0
                for (index, thread) in view.threads.enumerated() {
                    if let started = thread.startedAt {
                        busy = true
                        inFlight += 1
                        threads.append(
                            "{\"id\": \(index), \"status\": \"busy\", \"request\": \(JSON.quote(thread.requestLine)), "
                                + "\"running_ms\": \(now - started)}")
                    } else if listsIdleRows {
                        threads.append("{\"id\": \(index), \"status\": \"idle\"}")
                    }
                }
                // Requests running now: busy threads, or an async worker's requests in flight (--worker-connections).
                fields.append("\"in_flight\": \(inFlight)")
            }
            fields.append("\"status\": \"\(status == "idle" && busy ? "busy" : status)\"")
            fields.append("\"threads\": [" + threads.joined(separator: ", ") + "]")
            workers.append("    {" + fields.joined(separator: ", ") + "}")
        }
        let socketList = sockets.map { socket in
            "{\"name\": \(JSON.quote(socket.address.description)), \"proto\": \"\(socket.wire.rawValue)\", "
                + "\"queue\": \(socket.acceptQueueLength.map(String.init) ?? "null")}"
        }
        return "{\n  \"version\": \"keel-pool\",\n  \"pid\": \(getpid()),\n  \"generation\": \(generation),\n"
            + "  \"respawns\": \(respawns.values.reduce(0, +)),\n"
            + "  \"async\": \(configuration.isAsync),\n"
            + "  \"threads_per_worker\": \(configuration.threads),\n"
            + "  \"processes\": \(targetProcesses),\n"
            + "  \"cheaper\": \(cheaperStats),\n"
            + "  \"recent_recycles\": \(departuresStats(now: now)),\n"
            + "  \"sockets\": [" + socketList.joined(separator: ", ") + "],\n"
            + "  \"workers\": [\n" + workers.joined(separator: ",\n") + "\n  ]\n}\n"
    }
}

extension ListenSocket {
    /// Connections waiting in the listener's accept queue: TCP_INFO's tcpi_unacked on a TCP listener,
    /// sock_diag's queue length on a unix one.
    var acceptQueueLength: Int? {
        guard case .tcp = address else { return UnixListenQueue.length(of: fd) }
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return nil }
        return Int(info.tcpi_unacked)
    }
}
