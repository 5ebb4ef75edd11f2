#if canImport(Glibc)
import Glibc
#endif

/// A listening socket systemd (or `systemd-socket-activate`) passed in: used as it is, never re-bound, chmod'ed or
/// unlinked, since the socket unit owns it and keeps its queue across restarts.
public struct InheritedSocket: Sendable, Equatable, CustomStringConvertible {
    public let fd: Int32
    /// Its LISTEN_FDNAMES entry (a socket unit's FileDescriptorName=), if systemd gave one.
    public let name: String?
    public let address: SocketActivation.Address

    public init(fd: Int32, name: String?, address: SocketActivation.Address) {
        self.fd = fd
        self.name = name
        self.address = address
    }

    public var description: String {
        "inherited socket \(fd) (\(address)\(name.map { ", name \"\($0)\"" } ?? ""))"
    }
}

/// systemd's socket activation (sd_listen_fds(3)): LISTEN_PID names this process, LISTEN_FDS counts the sockets
/// from fd 3, LISTEN_FDNAMES names them. One rule for keel and keel-pool: an inherited socket replaces the bind of
/// the configured listener with its name or, failing that, its address; with no listener configured every inherited
/// socket is used; one that matches no listener is an error naming it.
public enum SocketActivation {
    /// An address as the kernel reports it, in one spelling: numeric IP text, or a unix path.
    public enum Address: Sendable, Equatable, CustomStringConvertible {
        case unix(path: String)
        case inet(ip: String, port: Int)

        public var description: String {
            switch self {
            case .unix(let path): path
            case .inet(let ip, let port): ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
            }
        }
    }

    /// A configured listener as the matching sees it.
    public struct Wanted: Sendable {
        public let name: String?
        public let address: Address?
        public init(name: String?, address: Address?) {
            self.name = name
            self.address = address
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    static let firstFD: Int32 = 3

    /// The sockets passed to this process, taken once: the variables are unset so the processes it starts (pools,
    /// workers) do not take them too. Empty when none were passed (or they were meant for another process).
    public static func take() throws(Failure) -> [InheritedSocket] {
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }) else { return [] }
        let countText = getenv("LISTEN_FDS").map { String(cString: $0) } ?? ""
        let namesText = getenv("LISTEN_FDNAMES").map { String(cString: $0) }
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) }
        guard Int32(pidText) == getpid() else { return [] }
        guard let count = Int32(countText), count >= 0 else {
            throw Failure("LISTEN_FDS=\(countText) is not a number of sockets: start keel from a socket unit or systemd-socket-activate")
        }
        let names = namesText.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        var sockets: [InheritedSocket] = []
        for fd in firstFD..<(firstFD + count) {
            let index = Int(fd - firstFD)
            let name = names.flatMap { index < $0.count && !$0[index].isEmpty ? $0[index] : nil }
            let label = "inherited socket \(fd)\(name.map { " (\"\($0)\")" } ?? "")"
            guard fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
                throw Failure("\(label): not an open descriptor (LISTEN_FDS=\(count)); check the socket unit")
            }
            var type: Int32 = 0
            var accepting: Int32 = 0
            guard socketOption(fd, SO_TYPE, &type), type == Int32(SOCK_STREAM.rawValue) else {
                throw Failure("\(label) is not a stream socket: use ListenStream= in the socket unit")
            }
            guard socketOption(fd, SO_ACCEPTCONN, &accepting), accepting == 1 else {
                throw Failure("\(label) is not listening: use Accept=no in the socket unit (keel accepts itself)")
            }
            guard let address = boundAddress(fd) else {
                throw Failure("\(label): cannot read its address (getsockname: \(String(cString: strerror(errno))))")
            }
            sockets.append(InheritedSocket(fd: fd, name: name, address: address))
        }
        return sockets
    }

    /// For each wanted listener, the inherited socket that replaces its bind (nil: bind as usual). With no listener
    /// wanted the caller uses every inherited socket; an inherited socket no listener takes is an error.
    public static func match(_ wanted: [Wanted], _ inherited: [InheritedSocket]) throws(Failure) -> [InheritedSocket?] {
        var assigned: [InheritedSocket?] = Array(repeating: nil, count: wanted.count)
        var unused = inherited
        // Names first: they are what a socket unit says on purpose.
        for (index, listener) in wanted.enumerated() {
            guard let name = listener.name, let at = unused.firstIndex(where: { $0.name == name }) else { continue }
            assigned[index] = unused.remove(at: at)
        }
        for (index, listener) in wanted.enumerated() where assigned[index] == nil {
            guard let address = listener.address, let at = unused.firstIndex(where: { $0.address == address }) else { continue }
            assigned[index] = unused.remove(at: at)
        }
        if let stray = unused.first {
            throw Failure(
                "\(stray) matches no configured listener: add one with that address or name, or remove it from the socket unit")
        }
        return assigned
    }

    /// A configured TCP address in the kernel's spelling ("localhost" → 127.0.0.1), for matching; nil if unresolvable.
    public static func resolve(host: String, port: Int) -> Address? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result) == 0, let info = result else { return nil }
        defer { freeaddrinfo(result) }
        return address(of: info.pointee.ai_addr, length: info.pointee.ai_addrlen)
    }

    static func boundAddress(_ fd: Int32) -> Address? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address -> Address? in
                guard getsockname(fd, address, &length) == 0 else { return nil }
                return Self.address(of: address, length: length)
            }
        }
    }

    static func address(of address: UnsafePointer<sockaddr>, length: socklen_t) -> Address? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet in
                var ip = inet.pointee.sin_addr
                guard inet_ntop(AF_INET, &ip, &text, socklen_t(text.count)) != nil else { return nil }
                return .inet(ip: String(cString: text), port: Int(UInt16(bigEndian: inet.pointee.sin_port)))
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet in
                var ip = inet.pointee.sin6_addr
                guard inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count)) != nil else { return nil }
                return .inet(ip: String(cString: text), port: Int(UInt16(bigEndian: inet.pointee.sin6_port)))
            }
        case AF_UNIX:
            return address.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { unix in
                withUnsafeBytes(of: unix.pointee.sun_path) { bytes in
                    .unix(path: String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
                }
            }
        default:
            return nil
        }
    }

    private static func socketOption(_ fd: Int32, _ option: Int32, _ value: inout Int32) -> Bool {
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, option, &value, &length) == 0
    }
}
