import Foundation
import NIOCore
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// A scripted uwsgi server on a unix socket that speaks the keel wire (or misbehaves on it), for the failures a real
/// keel-pool only shows by chance: a goodbye racing a request, a close after reading, bad framing, a stall.
/// Each connection is served on a thread of its own; `reply` decides what each request gets.
final class FakeKeelPool: @unchecked Sendable {
    enum Action {
        /// A framed response (frame + `http`), the connection kept.
        case respond(String)
        /// Raw bytes, then the connection is kept (or closed with `close`).
        case raw([UInt8], close: Bool)
        /// Goodbye without reading the request, as a leaving worker does.
        case goodbyeUnread
        /// Read the request (an app saw it), then close without a word: a worker killed mid-request.
        case closeAfterRead
        /// Read the request and answer nothing for `seconds`.
        case stall(seconds: Double)
        /// A framed 200 whose body comes one byte every 0.2 s for `seconds`: the thread busy, the read timer fed.
        case trickle(seconds: Double)
    }

    let path: String
    private let listenFD: Int32
    private let lock = NSLock()
    private var requestsRead = 0
    private var accepted = 0
    private var stopped = false
    private let reply: @Sendable (_ connection: Int, _ index: Int, _ method: String) -> Action

    /// `reply` gets the connection's number and the request's among those read (both 0-based), and its method.
    init(directory: String, _ reply: @escaping @Sendable (_ connection: Int, _ index: Int, _ method: String) -> Action) throws {
        let path = directory + "/fake.sock"
        let listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        self.path = path
        self.listenFD = listenFD
        self.reply = reply
        var addr = unixAddress(path)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listenFD, 64) == 0 else { throw HarnessError("fake pool: cannot listen on \(path)") }
        Thread { [self] in acceptLoop() }.start()
    }

    var readCount: Int { lock.withLock { requestsRead } }
    var connections: Int { lock.withLock { accepted } }

    func stop() {
        lock.withLock { stopped = true }
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    deinit { stop() }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if lock.withLock({ stopped }) { return }
                continue
            }
            let number = lock.withLock { () -> Int in
                accepted += 1
                return accepted - 1
            }
            Thread { [self] in serve(fd, connection: number) }.start()
        }
    }

    private func serve(_ fd: Int32, connection: Int) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var pending: [UInt8] = []
        while true {
            // Wait for the next request without reading it: a goodbye must leave it unread.
            var pollSet = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollSet, 1, 20_000) == 1 else { return }
            let index = lock.withLock { requestsRead }
            if case .goodbyeUnread = reply(connection, index, peekMethod(fd) ?? "") {
                send(fd, KeelWire.goodbyeBytes, 4, Int32(MSG_NOSIGNAL))
                shutdown(fd, Int32(SHUT_WR))
                _ = readUntilClosed(fd)
                return
            }
            guard let request = readPacket(fd, &pending) else { return }
            let number = lock.withLock { () -> Int in
                requestsRead += 1
                return requestsRead - 1
            }
            switch reply(connection, number, request) {
            case .respond(let http):
                var out = ByteBuffer()
                KeelWire.writeResponseFrame(KeelWire.Responder(pid: 7, capacity: 1), into: &out)
                out.writeString(http)
                guard writeAll(fd, Array(out.readableBytesView)) else { return }
            case .raw(let bytes, let closeAfter):
                guard writeAll(fd, bytes), !closeAfter else { return }
            case .goodbyeUnread, .closeAfterRead:
                return
            case .stall(let seconds):
                usleep(UInt32(seconds * 1_000_000))
                return
            case .trickle(let seconds):
                let count = max(1, Int(seconds / 0.2))
                var out = ByteBuffer()
                KeelWire.writeResponseFrame(KeelWire.Responder(pid: 7, capacity: 1), into: &out)
                out.writeString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(count)\r\n\r\n")
                guard writeAll(fd, Array(out.readableBytesView)) else { return }
                for _ in 0..<count {
                    usleep(200_000)
                    guard writeAll(fd, [UInt8(ascii: "t")]) else { return }
                }
            }
        }
    }

    /// The method of the request waiting on `fd`, peeked without consuming it.
    private func peekMethod(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_PEEK))
        guard n > 4 else { return nil }
        let vars = try? UWSGIPacket.parseVars(ByteBuffer(bytes: buffer[4..<min(n, 4 + Int(UInt16(buffer[1]) | UInt16(buffer[2]) << 8))]))
        return vars?.first { $0.name == "REQUEST_METHOD" }?.value
    }

    /// Reads one whole packet (header, vars, CONTENT_LENGTH body); its method, or nil at EOF.
    private func readPacket(_ fd: Int32, _ pending: inout [UInt8]) -> String? {
        func need(_ count: Int) -> Bool {
            while pending.count < count {
                var chunk = [UInt8](repeating: 0, count: 65536)
                let n = recv(fd, &chunk, chunk.count, 0)
                if n <= 0 { return false }
                pending += chunk[..<n]
            }
            return true
        }
        guard need(4) else { return nil }
        let size = Int(pending[1]) | Int(pending[2]) << 8
        guard need(4 + size), let vars = try? UWSGIPacket.parseVars(ByteBuffer(bytes: pending[4..<(4 + size)])) else { return nil }
        let length = Int(vars.first { $0.name == "CONTENT_LENGTH" }?.value ?? "") ?? 0
        guard need(4 + size + length) else { return nil }
        pending.removeFirst(4 + size + length)
        return vars.first { $0.name == "REQUEST_METHOD" }?.value ?? ""
    }

    private func readUntilClosed(_ fd: Int32) -> Int {
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return total }
            total += n
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
