import Foundation
import Testing
import UWSGI

#if canImport(Glibc)
import Glibc
#endif

/// keel-pool's --socket, spoken to as nginx's uwsgi_pass speaks.
@Suite("uwsgi socket", .timeLimit(.minutes(2)))
struct UWSGISocketTests {
    @Test func requestAndResponseThenClose() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let raw = try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/"))
        let reply = try UWSGIClient.parse(raw)
        #expect(reply.status == 200)
        #expect(reply.header("Content-Length") == "13")
        #expect(reply.text == "Hello world!\n")
        try pool.stop()
    }

    @Test func varsReachTheAppIntact() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env"])
        let vars = UWSGIClient.vars(uri: "/x?y=1", extra: [("HTTP_X_TOKEN", "abc \"quoted\""), ("HTTPS", "on")])
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: vars))
        let env = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        for (name, value) in vars { #expect(env[name] == value, "\(name)") }
        try pool.stop()
    }

    @Test func echoOfOneMebibyteIsByteExact() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let body = testBytes(count: 1 << 20, seed: 7)
        let vars = UWSGIClient.vars(method: "POST", uri: "/", contentLength: body.count)
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: vars, body: body))
        #expect(reply.status == 200)
        #expect(reply.body == body)
        try pool.stop()
    }

    @Test func hugeDeclaredBodyWithNoLimitIs413AndTheWorkerLives() throws {
        // --limit-post 0 means no configured limit; a buffered body still cannot pass 4 GiB.
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo", "--limit-post", "0"])
        let vars = UWSGIClient.vars(method: "POST", uri: "/", contentLength: 5_000_000_000)
        let reply = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: vars, body: [1, 2, 3]))
        #expect(reply.status == 413)
        let before = pool.workers
        let after = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(after.status == 200)
        #expect(pool.workers == before, "the worker must not have crashed and been respawned")
        try pool.stop()
    }

    @Test func httpClientOnUWSGISocketIsToldSoAndLogged() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let socket = try TestSocket(unixPath: pool.socketPath!)
        try socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let raw = String(decoding: try socket.readToEOF(), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 400"))
        #expect(raw.contains("uwsgi socket"))
        try Harness.waitUntil("the log line") { pool.log.contains("an HTTP request (GET ...) arrived on a uwsgi socket") }
        try pool.stop()
    }

    @Test(arguments: [
        ("unsupported modifier1", [5, 0, 0, 0] as [UInt8], "modifier1 5"),
        ("var past the block", [0, 4, 0, 0, 10, 0, 65, 66], "runs past"),
        ("negative CONTENT_LENGTH", [], "CONTENT_LENGTH"),
    ])
    func malformedPacketsCloseTheConnectionAndTheWorkerLives(name: String, bytes: [UInt8], logged: String) throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        var packet = bytes
        if packet.isEmpty {
            var buffer = ByteBufferShim.packet(vars: [("CONTENT_LENGTH", "-1")])
            packet = buffer.readAll()
        }
        let socket = try TestSocket(unixPath: pool.socketPath!)
        try socket.write(packet)
        #expect(try socket.readToEOF().isEmpty, "\(name): no response, just a close")
        try Harness.waitUntil("the log line for \(name)") { pool.log.contains(logged) }
        let after = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(after.status == 200)
        #expect(pool.workers.count == 1)
        try pool.stop()
    }

    @Test func silentClientIsClosedAfterSocketTimeout() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello", "--socket-timeout", "1"])
        let socket = try TestSocket(unixPath: pool.socketPath!)
        try socket.write([0, 200, 0])  // three bytes of a header, then silence
        let start = Date()
        #expect(try socket.readToEOF().isEmpty)
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.9 && waited < 5, "closed after \(waited)s")
        try Harness.waitUntil("the timeout log line") { pool.log.contains("not received within --socket-timeout 1s") }
        let after = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(after.status == 200)
        try pool.stop()
    }

    @Test func truncatedPacketIsLoggedAndDoesNotHurt() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        do {
            let socket = try TestSocket(unixPath: pool.socketPath!)
            try socket.write([0, 200, 0, 0, 1, 0])  // promises 200 bytes of vars, sends 2
            shutdown(socket.fd, Int32(SHUT_WR))
            #expect(try socket.readToEOF().isEmpty)
        }
        try Harness.waitUntil("the truncation log line") { pool.log.contains("truncated") }
        let after = try UWSGIClient.parse(try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/")))
        #expect(after.status == 200)
        try pool.stop()
    }
}

import NIOCore

enum ByteBufferShim {
    static func packet(vars: [(String, String)]) -> ByteBuffer {
        var buffer = ByteBuffer()
        try! UWSGIPacket.writeRequestHead(vars: vars.map { (name: $0.0, value: $0.1) }, into: &buffer)
        return buffer
    }
}

extension ByteBuffer {
    mutating func readAll() -> [UInt8] { readBytes(length: readableBytes) ?? [] }
}
