import Testing

@testable import KeelPool

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ListenAddressTests {
    static let longPath = "/tmp/" + String(repeating: "a", count: 195)  // 200 bytes

    /// The message of the error `parse` throws, or nil when it parses.
    static func parseError(_ text: String, flag: String = "--socket") -> String? {
        do {
            _ = try ListenAddress.parse(text, flag: flag)
            return nil
        } catch {
            return error.description
        }
    }

    @Test(
        arguments: [
            ("/run/a.sock", .unix(path: "/run/a.sock")),
            ("unix:/x/y.sock", .unix(path: "/x/y.sock")),
            ("unix:rel.sock", .unix(path: "rel.sock")),
            ("unix:app", .unix(path: "app")),
            ("rel.sock", .unix(path: "rel.sock")),
            ("./keel", .unix(path: "./keel")),
            ("/run/keel", .unix(path: "/run/keel")),
            ("127.0.0.1:8000", .tcp(host: "127.0.0.1", port: 8000)),
            (":3031", .tcp(host: "0.0.0.0", port: 3031)),
            ("[::1]:9000", .tcp(host: "::1", port: 9000)),
            ("[::]:80", .tcp(host: "::", port: 80)),
            ("localhost:0", .tcp(host: "localhost", port: 0)),
            ("example.com:65535", .tcp(host: "example.com", port: 65535)),
        ] as [(String, ListenAddress)])
    func parses(text: String, expected: ListenAddress) throws {
        #expect(try ListenAddress.parse(text, flag: "--socket") == expected)
    }

    @Test(arguments: [
        ("", "--socket is empty: give a unix socket path or HOST:PORT"),
        ("nohost", "--socket nohost: expected a unix socket path or HOST:PORT such as 127.0.0.1:8000"),
        ("1.2.3.4:99999", "--socket 1.2.3.4:99999: the port must be a number from 0 to 65535"),
        ("h:abc", "--socket h:abc: the port must be a number from 0 to 65535"),
        ("h:", "--socket h:: the port must be a number from 0 to 65535"),
        ("h:-1", "--socket h:-1: the port must be a number from 0 to 65535"),
        ("[::1]", "--socket [::1]: the port must be a number from 0 to 65535"),
        ("h:+80", "--socket h:+80: the port must be a number from 0 to 65535"),
        ("fe80::1", "--socket fe80::1: write an IPv6 address in brackets, e.g. [::1]:8000"),
        ("unix:", "--socket unix:: give the unix socket's path after unix:"),
        (
            longPath,
            "--socket \(longPath): unix socket paths are limited to 107 bytes; use a shorter path"
        ),
    ])
    func rejects(text: String, message: String) {
        #expect(Self.parseError(text) == message)
    }

    @Test(arguments: ["--socket", "--http-socket"])
    func errorsNameTheFlag(flag: String) {
        #expect(Self.parseError("", flag: flag)?.hasPrefix("\(flag) is empty") == true)
        #expect(Self.parseError("h:abc", flag: flag)?.hasPrefix("\(flag) h:abc: ") == true)
        #expect(Self.parseError(Self.longPath, flag: flag)?.hasPrefix("\(flag) \(Self.longPath): ") == true)
    }

    /// sun_path holds 108 bytes with the NUL; a `unix:` prefix does not count.
    @Test func unixPathLimitIs107Bytes() throws {
        let path107 = "/" + String(repeating: "p", count: 106)
        #expect(try ListenAddress.parse(path107, flag: "--socket") == .unix(path: path107))
        #expect(try ListenAddress.parse("unix:" + path107, flag: "--socket") == .unix(path: path107))
        #expect(Self.parseError(path107 + "p") != nil)
        // Multi-byte characters count in bytes: 53 × "é" is 106 bytes, plus the slash and one more.
        #expect(Self.parseError("/" + String(repeating: "é", count: 53) + "x") != nil)
    }

    @Test(
        arguments: [
            (.unix(path: "/run/a.sock"), "/run/a.sock"),
            (.unix(path: "rel.sock"), "rel.sock"),
            (.tcp(host: "127.0.0.1", port: 8000), "127.0.0.1:8000"),
            (.tcp(host: "0.0.0.0", port: 3031), "0.0.0.0:3031"),
            (.tcp(host: "::1", port: 9000), "[::1]:9000"),
            (.tcp(host: "localhost", port: 0), "localhost:0"),
        ] as [(ListenAddress, String)])
    func descriptionParsesBack(address: ListenAddress, description: String) throws {
        #expect(address.description == description)
        #expect(try ListenAddress.parse(description, flag: "--socket") == address)
    }
}

/// Real sockets in a private temp directory (short enough for sun_path).
@Suite struct ListenSocketTests {
    final class TempDirectory {
        let path: String

        init() throws {
            var template = Array("/tmp/keel-pool-test-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { buffer in
                mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
            }
            path = try #require(made)
        }

        deinit {
            if let dir = opendir(path) {
                while let entry = readdir(dir) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) {
                        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    if name != "." && name != ".." { unlink(path + "/" + name) }
                }
                closedir(dir)
            }
            rmdir(path)
        }
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    static func isSocket(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFSOCK
    }

    static func bindError(_ address: ListenAddress, flag: String = "--socket") -> String? {
        do {
            _ = try ListenSocket.bind(address, wire: .uwsgi, backlog: 8, chmod: nil, flag: flag)
            return nil
        } catch {
            return error.description
        }
    }

    /// A socket file nobody listens on, as a crashed server leaves behind.
    static func makeStaleSocket(at path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var addr = sockaddr_un.make(path)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        Glibc.close(fd)
        try #require(bound == 0)
    }

    @Test func bindsAUnixSocketAndRemovesItsFileOnClose() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/a.sock"
        let socket = try ListenSocket.bind(.unix(path: path), wire: .uwsgi, backlog: 8, chmod: nil, flag: "--socket")
        #expect(socket.address == .unix(path: path))
        #expect(socket.wire == .uwsgi)
        #expect(socket.fd >= 0)
        #expect(socket.boundPort == nil)
        #expect(Self.isSocket(path))
        #expect(ListenSocket.unixSocketIsLive(path))

        socket.close()
        #expect(socket.fd == -1)
        #expect(!Self.exists(path))
        #expect(!ListenSocket.unixSocketIsLive(path))
        socket.close()  // a second close is harmless
    }

    @Test func secondBindOnALivePathIsAddressInUse() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/a.sock"
        let first = try ListenSocket.bind(.unix(path: path), wire: .http, backlog: 8, chmod: nil, flag: "--http-socket")
        defer { first.close() }

        #expect(
            Self.bindError(.unix(path: path), flag: "--http-socket")
                == "--http-socket \(path): address in use: another server is listening on it; "
                + "stop it or choose another path")
        // The failed attempt leaves the live server's file alone.
        #expect(Self.isSocket(path))
        #expect(ListenSocket.unixSocketIsLive(path))
    }

    @Test func staleSocketFileIsNotLiveAndIsReplaced() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/stale.sock"
        try Self.makeStaleSocket(at: path)
        #expect(Self.isSocket(path))
        #expect(!ListenSocket.unixSocketIsLive(path))

        let socket = try ListenSocket.bind(.unix(path: path), wire: .uwsgi, backlog: 8, chmod: nil, flag: "--socket")
        defer { socket.close() }
        #expect(ListenSocket.unixSocketIsLive(path))
    }

    @Test func unixSocketIsLiveIsFalseWithoutAFile() throws {
        let dir = try TempDirectory()
        #expect(!ListenSocket.unixSocketIsLive(dir.path + "/missing.sock"))
    }

    /// A server too busy to accept still owns its path. `unixSocketIsLive` expects EAGAIN for a full
    /// backlog, but its probe socket is blocking, and a blocking unix connect waits for room instead.
    @Test func listenerWithAFullBacklogIsLive() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/busy.sock"
        let server = try ListenSocket.bind(.unix(path: path), wire: .uwsgi, backlog: 0, chmod: nil, flag: "--socket")
        defer { server.close() }
        var clients: [Int32] = []
        defer { for fd in clients { Glibc.close(fd) } }
        var full = false
        while !full && clients.count < 64 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            try #require(fd >= 0)
            clients.append(fd)
            var addr = sockaddr_un.make(path)
            let result = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            full = result != 0 && errno == EAGAIN
        }
        try #require(full)

        let probe = BackgroundCall { ListenSocket.unixSocketIsLive(path) }
        #expect(probe.finished(within: 0.3))
        #expect(probe.result == true)
        server.close()
    }

    @Test func chmodIsAppliedToTheSocketFile() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/a.sock"
        let socket = try ListenSocket.bind(.unix(path: path), wire: .uwsgi, backlog: 8, chmod: 0o660, flag: "--socket")
        defer { socket.close() }
        var status = stat()
        try #require(lstat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o660)
    }

    @Test func pathThatIsNotASocketIsRefusedAndKept() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/plain.sock"
        let fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        Glibc.close(fd)

        #expect(
            Self.bindError(.unix(path: path))
                == "--socket \(path): the path exists and is not a socket; remove it or choose another path")
        #expect(Self.exists(path))
    }

    @Test func missingDirectoryIsNamed() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/missing/a.sock"
        #expect(
            Self.bindError(.unix(path: path))
                == "--socket \(path): directory \(dir.path)/missing does not exist; create it or choose another path")
    }

    @Test func tcpPortZeroBindsAFreePortAndASecondBindIsAddressInUse() throws {
        let socket = try ListenSocket.bind(
            .tcp(host: "127.0.0.1", port: 0), wire: .http, backlog: 8, chmod: nil, flag: "--http-socket")
        defer { socket.close() }
        let port = try #require(socket.boundPort)
        #expect(port > 0)

        #expect(
            Self.bindError(.tcp(host: "127.0.0.1", port: port), flag: "--http-socket")
                == "--http-socket 127.0.0.1:\(port): address in use; stop the other server or choose another port")
    }
}
