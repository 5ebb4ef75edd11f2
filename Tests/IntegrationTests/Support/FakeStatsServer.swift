import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for `keel-pool --stats` on a unix socket: answers each connection with `document` and closes, or, when
/// `document` is nil, accepts and never answers (a stuck master). Stopped (and every held connection closed) by
/// `stop()` or deinit.
final class FakeStatsServer: @unchecked Sendable {
    let path: String
    private let listenFD: Int32
    private let document: String?
    private let lock = NSLock()
    private var held: [Int32] = []
    private var stopped = false

    init(path: String, document: String?) throws {
        self.path = path
        self.document = document
        let listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        self.listenFD = listenFD
        var addr = unixAddress(path)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(listenFD, 16) == 0 else { throw HarnessError("fake stats: cannot listen on \(path)") }
        Thread { [self] in acceptLoop() }.start()
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if lock.withLock({ stopped }) { return }
                continue
            }
            guard let document else {
                lock.withLock { held.append(fd) }
                continue
            }
            var bytes = Array(document.utf8)
            var sent = 0
            while sent < bytes.count {
                let count = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
                if count <= 0 { break }
                sent += count
            }
            close(fd)
        }
    }

    func stop() {
        let fds = lock.withLock { () -> [Int32] in
            guard !stopped else { return [] }
            stopped = true
            defer { held.removeAll() }
            return held
        }
        fds.forEach { close($0) }
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
        unlink(path)
    }

    deinit { stop() }
}
