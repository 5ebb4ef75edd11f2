import CKeelSys

#if canImport(Glibc)
import Glibc
#endif

/// How many connections wait in a unix listening socket's accept queue — what `ss -xl` shows as
/// Recv-Q. Linux reports it only through sock_diag (netlink), by the socket's inode.
enum UnixListenQueue {
    static func length(of fd: Int32) -> Int? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let netlink = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
        guard netlink >= 0 else { return nil }
        defer { close(netlink) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(netlink, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        struct Request {
            var header: nlmsghdr
            var body: unix_diag_req
        }
        var request = Request(header: nlmsghdr(), body: unix_diag_req())
        request.header.nlmsg_len = UInt32(MemoryLayout<Request>.size)
        request.header.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
        request.header.nlmsg_flags = UInt16(NLM_F_REQUEST)
        request.body.sdiag_family = UInt8(AF_UNIX)
        request.body.udiag_states = UInt32.max
        request.body.udiag_ino = UInt32(truncatingIfNeeded: info.st_ino)
        request.body.udiag_show = UInt32(UDIAG_SHOW_RQLEN)
        request.body.udiag_cookie = (UInt32.max, UInt32.max)  // INET_DIAG_NOCOOKIE: any socket with this inode
        let sent = withUnsafeBytes(of: &request) { send(netlink, $0.baseAddress, $0.count, 0) }
        guard sent == MemoryLayout<Request>.size else { return nil }

        var buffer = [UInt8](repeating: 0, count: 8192)
        let count = recv(netlink, &buffer, buffer.count, 0)
        guard count >= MemoryLayout<nlmsghdr>.size + MemoryLayout<unix_diag_msg>.size else { return nil }
        return buffer.withUnsafeBytes { raw -> Int? in
            let header = raw.loadUnaligned(as: nlmsghdr.self)
            guard header.nlmsg_type == UInt16(SOCK_DIAG_BY_FAMILY) else { return nil }
            // Attributes (rtattr: len, type, payload aligned to 4) follow the unix_diag_msg.
            var offset = MemoryLayout<nlmsghdr>.size + MemoryLayout<unix_diag_msg>.size
            let end = min(Int(header.nlmsg_len), count)
            while offset + 4 <= end {
                let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
                let type = Int(raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
                guard length >= 4 else { return nil }
                if type == Int(UNIX_DIAG_RQLEN), length >= 4 + MemoryLayout<unix_diag_rqlen>.size {
                    let queue = raw.loadUnaligned(fromByteOffset: offset + 4, as: unix_diag_rqlen.self)
                    return Int(queue.udiag_rqueue)
                }
                offset += (length + 3) & ~3
            }
            return nil
        }
    }
}
