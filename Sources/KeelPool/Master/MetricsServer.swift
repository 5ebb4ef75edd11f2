import KeelMetrics

#if canImport(Glibc)
import Glibc
#endif

/// `--metrics`: the master answers `GET /metrics` over HTTP/1.x for Prometheus. The master has no event loop, so
/// clients are non-blocking and advanced on its tick: a client that never sends its request costs a slot, not a stall.
final class MetricsServer {
    private struct Client {
        var fd: Int32
        var received: [UInt8] = []
        var deadline: Int64
    }

    private let socket: ListenSocket
    private var clients: [Client] = []
    static let maxClients = 64
    static let maxHeadBytes = 8192
    static let clientMilliseconds: Int64 = 5000

    init(address: ListenAddress) throws(PoolError) {
        socket = try ListenSocket.bind(address, wire: .http, backlog: 64, chmod: nil, flag: "--metrics")
        let flags = fcntl(socket.fd, F_GETFL)
        _ = fcntl(socket.fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Accepts, reads and answers what is ready; `exposition()` is called once per tick at most, when asked.
    func serve(now: Int64, exposition: () -> [UInt8]) {
        while clients.count < Self.maxClients {
            let fd = accept(socket.fd, nil, nil)
            guard fd >= 0 else { break }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            clients.append(Client(fd: fd, deadline: now + Self.clientMilliseconds))
        }
        var body: [UInt8]?
        var waiting: [Client] = []
        for var client in clients {
            guard let done = read(&client, now: now) else {
                waiting.append(client)
                continue
            }
            switch done {
            case .metrics(let head):
                if body == nil { body = exposition() }
                respond(client.fd, status: "200 OK", contentType: DescribedPrometheusFactory.contentType, body: body!, head: head)
            case .notFound:
                respond(client.fd, status: "404 Not Found", contentType: "text/plain", body: Array("only /metrics is served here\n".utf8), head: false)
            case .badRequest:
                respond(client.fd, status: "400 Bad Request", contentType: "text/plain", body: Array("bad request\n".utf8), head: false)
            case .methodNotAllowed:
                respond(client.fd, status: "405 Method Not Allowed", contentType: "text/plain", body: Array("GET /metrics\n".utf8), head: false)
            case .gone:
                break
            }
            Glibc.close(client.fd)
        }
        clients = waiting
    }

    func close() {
        for client in clients { Glibc.close(client.fd) }
        clients.removeAll()
        socket.close()
    }

    private enum Outcome {
        case metrics(head: Bool)
        case notFound, badRequest, methodNotAllowed, gone
    }

    /// nil while the request head is still arriving.
    private func read(_ client: inout Client, now: Int64) -> Outcome? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(client.fd, &buffer, buffer.count, 0)
            if count > 0 {
                client.received += buffer[..<count]
                if client.received.count > Self.maxHeadBytes { return .badRequest }
                continue
            }
            if count == 0 { return .gone }
            if errno == EINTR { continue }
            if errno != EAGAIN && errno != EWOULDBLOCK { return .gone }
            break
        }
        guard let end = headEnd(client.received) else { return now >= client.deadline ? .gone : nil }
        let line = client.received[..<end].split(separator: UInt8(ascii: "\r"), maxSplits: 1).first ?? []
        let parts = line.split(separator: UInt8(ascii: " "))
        guard parts.count == 3, parts[2].starts(with: Array("HTTP/1.".utf8)) else { return .badRequest }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        guard path == "/metrics" else { return .notFound }
        switch method {
        case "GET": return .metrics(head: false)
        case "HEAD": return .metrics(head: true)
        default: return .methodNotAllowed
        }
    }

    private func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    private func respond(_ fd: Int32, status: String, contentType: String, body: [UInt8], head: Bool) {
        // Switch to blocking with a bound: the answer is small and a client that does not read must not hold the master.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let headText =
            "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let answer = Array(headText.utf8) + (head ? [] : body)
        answer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}
