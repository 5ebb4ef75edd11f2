import Foundation
import NIOCore
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// A blocking socket for tests: connect, write everything, read with a deadline.
final class TestSocket {
    let fd: Int32

    init(tcpPort port: Int) throws {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        fd = try Self.connect(to: &addr, family: AF_INET, describing: "127.0.0.1:\(port)")
        setTimeout(seconds: 15)
    }

    init(unixPath path: String) throws {
        var addr = unixAddress(path)
        fd = try Self.connect(to: &addr, family: AF_UNIX, describing: path)
        setTimeout(seconds: 15)
    }

    private static func connect<Address>(to address: inout Address, family: Int32, describing name: String) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        // Bounds connect too: a unix listener with a full backlog would block it with no end.
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<Address>.size))
            }
        }
        if result != 0 {
            let code = errno
            close(fd)
            throw HarnessError("connect \(name): \(String(cString: strerror(code)))")
        }
        return fd
    }

    deinit { close(fd) }

    func setTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HarnessError("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// Reads what is available (blocking up to the timeout); empty at EOF.
    func readSome() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { return [] }
                throw HarnessError("recv: \(String(cString: strerror(errno)))")
            }
            return Array(buffer[..<n])
        }
    }

    func readToEOF() throws -> [UInt8] {
        var all: [UInt8] = []
        while true {
            let chunk = try readSome()
            if chunk.isEmpty { return all }
            all += chunk
        }
    }
}

/// An HTTP response as the tests see it.
struct HTTPReply {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Reads HTTP/1.1 responses off a socket, one at a time, honouring Content-Length and chunked framing.
final class HTTPResponseReader {
    let socket: TestSocket
    private var buffer: [UInt8] = []

    init(_ socket: TestSocket) { self.socket = socket }

    private func fill() throws -> Bool {
        let chunk = try socket.readSome()
        buffer += chunk
        return !chunk.isEmpty
    }

    private func readLine() throws -> String {
        while true {
            if let index = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[..<index]
                buffer.removeFirst(index + 1)
                return String(decoding: line, as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            }
            guard try fill() else { throw HarnessError("connection closed before a full line") }
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw HarnessError("connection closed after \(buffer.count) of \(count) bytes") }
        }
        let bytes = Array(buffer[..<count])
        buffer.removeFirst(count)
        return bytes
    }

    func next(headRequest: Bool = false) throws -> HTTPReply {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw HarnessError("bad status line '\(statusLine)'") }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw HarnessError("bad header line '\(line)'") }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var reply = HTTPReply(status: status, headers: headers, body: [])
        if headRequest || status == 100 || status == 204 || status == 304 { return reply }
        if let length = reply.header("Content-Length").flatMap({ Int($0) }) {
            reply.body = try readExactly(length)
        } else if reply.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw HarnessError("bad chunk size '\(sizeLine)'")
                }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                reply.body += try readExactly(size)
                _ = try readLine()
            }
        } else {
            while try fill() {}
            reply.body = buffer
            buffer = []
        }
        return reply
    }
}

enum HTTPClient {
    /// One request on a fresh connection (`Connection: close`).
    static func request(
        port: Int, method: String = "GET", _ target: String, headers: [(String, String)] = [], body: [UInt8] = []
    ) throws -> HTTPReply {
        let socket = try TestSocket(tcpPort: port)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try socket.write(Array(head.utf8) + body)
        return try HTTPResponseReader(socket).next(headRequest: method == "HEAD")
    }

    static func get(port: Int, _ target: String) throws -> HTTPReply { try request(port: port, target) }
}

enum UWSGIClient {
    /// Sends one uwsgi packet (vars + body) and returns the raw response up to the close.
    static func exchange(path: String, vars: [(String, String)], body: [UInt8] = []) throws -> [UInt8] {
        let socket = try TestSocket(unixPath: path)
        var packet = ByteBuffer()
        try UWSGIPacket.writeRequestHead(vars: vars.map { (name: $0.0, value: $0.1) }, into: &packet)
        try socket.write(Array(packet.readableBytesView) + body)
        return try socket.readToEOF()
    }

    /// nginx-style vars for a GET of `uri`.
    static func vars(method: String = "GET", uri: String, contentLength: Int = 0, extra: [(String, String)] = [])
        -> [(String, String)]
    {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let query = uri.contains("?") ? String(uri.split(separator: "?", maxSplits: 1)[1]) : ""
        return [
            ("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", contentLength > 0 ? String(contentLength) : ""), ("REQUEST_URI", uri),
            ("PATH_INFO", path), ("DOCUMENT_ROOT", "/var/www"), ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "50000"),
            ("SERVER_PORT", "80"), ("SERVER_NAME", "localhost"), ("HTTP_HOST", "localhost"),
        ] + extra
    }

    /// Parses the raw HTTP response a uwsgi socket sent.
    static func parse(_ raw: [UInt8]) throws -> HTTPReply {
        guard let end = raw.indices.first(where: { i in
            i + 3 < raw.count && raw[i] == 13 && raw[i + 1] == 10 && raw[i + 2] == 13 && raw[i + 3] == 10
        }) else { throw HarnessError("no header end in uwsgi response: \(String(decoding: raw, as: UTF8.self))") }
        let head = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ")[1]) ?? 0
        let headers = head.dropFirst().map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return HTTPReply(status: status, headers: headers, body: Array(raw[(end + 4)...]))
    }
}

/// A unix socket address for `path` (at most 107 bytes, as the tests' temp paths are).
func unixAddress(_ path: String) -> sockaddr_un {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return addr
}

/// Deterministic pseudo-random bytes, so a corrupted byte shows up in the comparison.
func testBytes(count: Int, seed: UInt64 = 42) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}
