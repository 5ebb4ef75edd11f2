import KeelSystem

#if canImport(Glibc)
import Glibc
#endif

/// Where a listening socket lives: `/path.sock` (unix) or `host:port` (TCP; `:port` = every interface).
public enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// Parses a uWSGI-style address; anything with a `/` or ending in `.sock` is a unix path.
    public static func parse(_ text: String, flag: String) throws(PoolError) -> ListenAddress {
        if text.isEmpty { throw PoolError("\(flag) is empty: give a unix socket path or HOST:PORT") }
        if text.hasPrefix("unix:") || text.contains("/") || text.hasSuffix(".sock") {
            let path = text.hasPrefix("unix:") ? String(text.dropFirst(5)) : text
            if path.isEmpty { throw PoolError("\(flag) \(text): give the unix socket's path after unix:") }
            // sun_path holds 108 bytes including the terminating NUL.
            if path.utf8.count > 107 {
                throw PoolError("\(flag) \(path): unix socket paths are limited to 107 bytes; use a shorter path")
            }
            return .unix(path: path)
        }
        let host: String
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            // [IPv6]:port
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            portText = rest.hasPrefix(":") ? rest.dropFirst() : ""
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw PoolError("\(flag) \(text): expected a unix socket path or HOST:PORT such as 127.0.0.1:8000")
            }
            host = String(text[..<colon])
            if host.contains(":") {
                throw PoolError("\(flag) \(text): write an IPv6 address in brackets, e.g. [::1]:8000")
            }
            portText = text[text.index(after: colon)...]
        }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCIIDigit), let port = Int(portText), (0...65535).contains(port)
        else {
            throw PoolError("\(flag) \(text): the port must be a number from 0 to 65535")
        }
        return .tcp(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    /// The address of a socket systemd passed in, as a listener's address.
    public init(inherited address: SocketActivation.Address) {
        switch address {
        case .unix(let path): self = .unix(path: path)
        case .inet(let ip, let port): self = .tcp(host: ip, port: port)
        }
    }

    /// This address in the kernel's spelling, to match an inherited socket (relative unix paths made absolute).
    public var activationAddress: SocketActivation.Address? {
        switch self {
        case .unix(let path):
            guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return .unix(path: path) }
            defer { free(cwd) }
            return .unix(path: String(cString: cwd) + "/" + path)
        case .tcp(let host, let port):
            return SocketActivation.resolve(host: host, port: port)
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): return path
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// A bound, listening socket owned by the master (close-on-exec; workers get it by dup2 at spawn).
public final class ListenSocket {
    public let address: ListenAddress
    public let wire: WorkerConfiguration.Wire
    public private(set) var fd: Int32
    /// The unix socket file this master created and must remove on exit.
    private var ownedPath: String?

    private init(address: ListenAddress, wire: WorkerConfiguration.Wire, fd: Int32, ownedPath: String?) {
        self.address = address
        self.wire = wire
        self.fd = fd
        self.ownedPath = ownedPath
    }

    deinit { close() }

    /// The TCP port actually bound (differs from the requested one when that was 0).
    public var boundPort: Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
        default: return nil
        }
    }

    /// Replaces the descriptor by `transform(fd)` (used to move it out of the workers' fd range).
    func relocate(_ transform: (Int32) -> Int32) -> Int32 {
        fd = transform(fd)
        return fd
    }

    /// Stops listening; a unix socket file is removed first so new clients get ENOENT, not a queue that never drains.
    public func close() {
        unlinkFile()
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    public func unlinkFile() {
        if let path = ownedPath {
            unlink(path)
            ownedPath = nil
        }
    }

    /// A socket systemd passed in: already bound and listening, and the socket unit's to chmod, chown and unlink.
    public static func adopt(fd: Int32, address: ListenAddress, wire: WorkerConfiguration.Wire) -> ListenSocket {
        ListenSocket(address: address, wire: wire, fd: fd, ownedPath: nil)
    }

    public static func bind(
        _ address: ListenAddress, wire: WorkerConfiguration.Wire, backlog: Int, chmod mode: mode_t?, flag: String
    ) throws(PoolError) -> ListenSocket {
        switch address {
        case .unix(let path):
            return try bindUnix(path: path, wire: wire, backlog: backlog, mode: mode, flag: flag)
        case .tcp(let host, let port):
            return try bindTCP(host: host, port: port, address: address, wire: wire, backlog: backlog, flag: flag)
        }
    }

    private static func bindUnix(
        path: String, wire: WorkerConfiguration.Wire, backlog: Int, mode: mode_t?, flag: String
    ) throws(PoolError) -> ListenSocket {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dir = directory.isEmpty ? "/" : directory
        if access(dir, F_OK) != 0 {
            throw PoolError("\(flag) \(path): directory \(dir) does not exist; create it or choose another path")
        }
        if access(dir, W_OK | X_OK) != 0 {
            throw PoolError(
                "\(flag) \(path): directory \(dir) is not writable by this user; fix its permissions or choose another path")
        }
        var status = stat()
        if lstat(path, &status) == 0 {
            guard (status.st_mode & S_IFMT) == S_IFSOCK else {
                throw PoolError("\(flag) \(path): the path exists and is not a socket; remove it or choose another path")
            }
            if unixSocketIsLive(path) {
                throw PoolError(
                    "\(flag) \(path): address in use: another server is listening on it; stop it or choose another path")
            }
            // Nobody answers: a stale file left by a process that did not clean up.
            MasterLog.info("removing stale socket file \(path) (nothing listens on it)")
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .errno("\(flag) \(path): socket()", errno) }
        var addr = sockaddr_un.make(path)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if bound != 0 {
            let code = errno
            Glibc.close(fd)
            if code == EADDRINUSE {
                throw PoolError("\(flag) \(path): address in use; stop the other server or choose another path")
            }
            throw .errno("\(flag) \(path): cannot bind", code)
        }
        let socket = ListenSocket(address: .unix(path: path), wire: wire, fd: fd, ownedPath: path)
        if let mode, chmod(path, mode) != 0 {
            throw .errno("--chmod-socket: cannot chmod \(path)", errno)
        }
        try socket.listen(backlog: backlog, flag: flag)
        return socket
    }

    private static func bindTCP(
        host: String, port: Int, address: ListenAddress, wire: WorkerConfiguration.Wire, backlog: Int, flag: String
    ) throws(PoolError) -> ListenSocket {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let lookup = getaddrinfo(host, String(port), &hints, &result)
        guard lookup == 0, let info = result else {
            throw PoolError(
                "\(flag) \(address): cannot resolve host '\(host)': \(String(cString: gai_strerror(lookup)))")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .errno("\(flag) \(address): socket()", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
            let code = errno
            Glibc.close(fd)
            switch code {
            case EADDRINUSE:
                throw PoolError("\(flag) \(address): address in use; stop the other server or choose another port")
            case EACCES:
                throw PoolError(
                    "\(flag) \(address): permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE")
            case EADDRNOTAVAIL:
                throw PoolError("\(flag) \(address): \(host) is not an address of this machine")
            default:
                throw .errno("\(flag) \(address): cannot bind", code)
            }
        }
        let socket = ListenSocket(address: address, wire: wire, fd: fd, ownedPath: nil)
        try socket.listen(backlog: backlog, flag: flag)
        return socket
    }

    private func listen(backlog: Int, flag: String) throws(PoolError) {
        if Glibc.listen(fd, Int32(clamping: backlog)) != 0 {
            throw .errno("\(flag) \(address): listen()", errno)
        }
    }

    /// Whether a server accepts connections on the unix socket at `path` (ECONNREFUSED means stale).
    static func unixSocketIsLive(_ path: String) -> Bool {
        // Non-blocking: a blocking connect to a listener with a full backlog would wait, not fail.
        let fd = socket(
            AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var addr = sockaddr_un.make(path)
        let result = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        // EAGAIN: the listener exists but its backlog is full, so it is very much alive.
        return result == 0 || errno == EAGAIN
    }
}

extension sockaddr_un {
    static func make(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }
}

/// The kernel's cap on listen backlogs; a larger --listen is silently truncated to it.
func systemMaxBacklog() -> Int? {
    readProcFile("/proc/sys/net/core/somaxconn").flatMap { Int($0.filter(\.isNumber)) }
}

/// The text of a small /proc file (a few hundred bytes at most), or nil if it cannot be read.
func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let count = read(fd, &buffer, buffer.count)
    guard count > 0 else { return nil }
    return String(decoding: buffer[..<count], as: UTF8.self)
}

extension ListenAddress {
    /// A blocking client connection to this address (`keel-pool stats` reading a `--stats` server).
    public func connectClient() throws(PoolError) -> Int32 {
        switch self {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_un.make(path)
            let result = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard result == 0 else {
                let code = errno
                close(fd)
                throw .errno("cannot connect to \(path)", code)
            }
            return fd
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var info: UnsafeMutablePointer<addrinfo>?
            // A server bound to every interface is reached on loopback.
            guard getaddrinfo(host == "0.0.0.0" ? "127.0.0.1" : host, String(port), &hints, &info) == 0, let info else {
                throw PoolError("cannot resolve \(host)")
            }
            defer { freeaddrinfo(info) }
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                let code = errno
                close(fd)
                throw .errno("cannot connect to \(self)", code)
            }
            return fd
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
