import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// WebSockets end to end: an ASGI app on keel-pool, directly on --http-socket and through keel's tunnel (uwsgi and
/// HTTP upstreams), driven by the `websockets` client from PyPI; bad frames and handshakes with raw sockets.
@Suite("WebSockets: keel-pool ASGI and keel's tunnel", .timeLimit(.minutes(3)))
struct WebSocketTests {
    /// keel-pool serving `ws_echo` on HTTP and uwsgi, plus a keel in front of its uwsgi socket.
    final class Stack: @unchecked Sendable {
        let directory: String
        let pool: PoolUnderTest
        let front: FrontUnderTest?
        let venv: String

        init(front: Bool = true, poolArguments: [String] = [], frontConfig: Bool = false, limits: [String] = []) throws {
            venv = try AsyncTestApps.requireVenv()
            directory = try AsyncTestApps.makeDirectory()
            pool = try PoolUnderTest(
                http: true, uwsgi: true,
                ["--chdir", directory, "--virtualenv", venv, "--env", "KEEL_TEST_STATE=\(directory)",
                 "--asgi", "\(AsyncTestApps.module):ws_echo"] + poolArguments)
            // With a config file when the test HUPs keel (flags alone leave nothing to reload).
            let config = [
                "[[listen]]", "address = \"127.0.0.1:{PORT}\"", "[upstream.app]",
                "servers = [\"unix:\(pool.socketPath!)\"]", "[[route]]", "uwsgi = \"app\"",
            ].joined(separator: "\n") + (limits.isEmpty ? "" : "\n[limits]\n" + limits.joined(separator: "\n"))
            self.front = !front ? nil
                : frontConfig ? try FrontUnderTest(config: config) : try FrontUnderTest(["--uwsgi", "unix:\(pool.socketPath!)"])
        }

        /// Runs the client scenario against `uri`; its one line of JSON.
        func client(_ uri: String, _ scenario: String) throws -> [String: Any] {
            let (_, text) = try ChildProcess.run(venv + "/bin/python3", [directory + "/ws_client.py", uri, scenario], seconds: 40)
            guard let line = text.split(separator: "\n").last, let data = line.data(using: .utf8),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { throw HarnessError("ws_client.py \(scenario) \(uri) said:\n\(text)\n--- pool log:\n\(pool.log)") }
            return json
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func checkEcho(_ result: [String: Any]) {
        #expect(result["subprotocol"] as? String == "chat")
        #expect(result["text"] as? String == "hello")
        #expect(result["binary"] as? Bool == true)
        #expect(result["big"] as? Bool == true, "a 1 MiB message both ways")
        #expect(result["pong"] as? Bool == true)
        #expect((result["close"] as? [Any])?.first as? Int == 4001)
        #expect((result["close"] as? [Any])?.last as? String == "asked")
        let scope = result["scope"] as? [String: Any]
        #expect(scope?["type"] as? String == "websocket")
        #expect(scope?["scheme"] as? String == "ws")
        #expect(scope?["subprotocols"] as? [String] == ["chat"])
    }

    @Test func echoDirectlyAndThroughKeelsTunnel() throws {
        let stack = try Stack()
        Self.checkEcho(try stack.client("ws://127.0.0.1:\(stack.pool.httpPort!)/echo", "echo"))
        Self.checkEcho(try stack.client("ws://127.0.0.1:\(stack.front!.port)/echo", "echo"))
        // A plain request to the same route gets the app's own answer.
        #expect(try HTTPClient.get(port: stack.pool.httpPort!, "/echo").text == "plain http answer")
        #expect(try stack.front!.get("/echo").text == "plain http answer")
        // A close before the accept denies the handshake with a 403.
        #expect(try stack.client("ws://127.0.0.1:\(stack.pool.httpPort!)/deny", "deny")["status"] as? Int == 403)
        #expect(try stack.client("ws://127.0.0.1:\(stack.front!.port)/deny", "deny")["status"] as? Int == 403)
        // Accept headers with CR/LF are the app's error: a 500, never written as given.
        #expect(try stack.client("ws://127.0.0.1:\(stack.pool.httpPort!)/bad-header", "deny")["status"] as? Int == 500)
        #expect(try stack.client("ws://127.0.0.1:\(stack.front!.port)/bad-header", "deny")["status"] as? Int == 500)
        try stack.front!.stop()
        #expect(stack.front!.log.contains("\"GET /echo HTTP/1.1\" 101 "), "the tunnel's access-log line")

        // keel → keel-pool's HTTP socket (proxy_pass with the upgrade headers).
        let proxied = try FrontUnderTest(["--proxy", "127.0.0.1:\(stack.pool.httpPort!)"])
        Self.checkEcho(try stack.client("ws://127.0.0.1:\(proxied.port)/echo", "echo"))
        try proxied.stop()
        try stack.pool.stop()
    }

    @Test func keelsTunnelSurvivesAHUP() throws {
        let stack = try Stack(frontConfig: true)
        let front = stack.front!
        let outputPath = stack.directory + "/hold.out"
        let goPath = stack.directory + "/go"
        let process = try ChildProcess(
            stack.venv + "/bin/python3", [stack.directory + "/ws_client.py", "ws://127.0.0.1:\(front.port)/echo", "hold", goPath],
            outputPath: outputPath)
        var text: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
        try? Harness.waitUntil("the client to connect", seconds: 20) { text.contains("ready") || !process.isRunning }
        try #require(text.contains("ready"), "the client did not connect: \(text)")
        kill(front.process.pid, SIGHUP)
        try Harness.waitUntil("keel to reload", seconds: 10) { front.log.contains("configuration reloaded") }
        #expect(try front.get("/echo").text == "plain http answer", "keel serves after the HUP")
        FileManager.default.createFile(atPath: goPath, contents: nil)
        _ = process.waitForExit(seconds: 20)
        #expect(text.contains(#""before": "before""#))
        #expect(text.contains(#""after": "after""#), "the established tunnel carried on after the HUP: \(text)")
        try front.stop()
        try stack.pool.stop()
    }

    @Test func anOpenWebSocketIsNotARequestRunningPastHarakiri() throws {
        let stack = try Stack(front: false, poolArguments: ["--harakiri", "1"])
        let socket = try TestSocket(tcpPort: stack.pool.httpPort!)
        try socket.write(Self.handshake)
        _ = try Self.readSwitch(socket)
        Thread.sleep(forTimeInterval: 2.5)
        try socket.write([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2])  // "hi", masked
        let echo = try socket.readSome()
        #expect(echo == [0x81, 0x02, 0x68, 0x69], "the echo came from the same worker, 2.5 s after the 101")
        try stack.pool.stop()
        #expect(!stack.pool.log.contains("HARAKIRI"))
    }

    @Test func keelLimitsTunnelsAndClosesIdleOnes() throws {
        let stack = try Stack(frontConfig: true, limits: ["max_tunnels = 1", "tunnel_idle_timeout = \"1s\""])
        let port = stack.front!.port
        let first = try TestSocket(tcpPort: port)
        try first.write(Self.handshake)
        _ = try Self.readSwitch(first)
        // A second upgrade while one tunnel is open: 503 with max_tunnels = 1; plain requests still pass.
        let second = try HTTPClient.request(
            port: port, "/echo",
            headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                      ("Sec-WebSocket-Version", "13")])
        #expect(second.status == 503)
        #expect(try stack.front!.get("/echo").text == "plain http answer")
        // Nothing either way for tunnel_idle_timeout: keel closes the tunnel (the client sees the end).
        let start = Date()
        while (try? first.readSome())?.isEmpty == false {}
        let waited = Date().timeIntervalSince(start)
        #expect(waited < 5, "closed after about 1 s idle (took \(waited) s)")
        try Harness.waitUntil("the tunnel's slot to come back", seconds: 5) {
            let socket = try TestSocket(tcpPort: port)
            try socket.write(Self.handshake)
            return (try? Self.readSwitch(socket)) != nil
        }
        try stack.front!.stop()
        #expect(stack.front!.log.contains("(limits.max_tunnels): answered 503"))
        #expect(stack.front!.log.contains("idle for tunnel_idle_timeout"))
        try stack.pool.stop()
    }

    @Test func oversizedMessageClosesWith1009() throws {
        let stack = try Stack(poolArguments: ["--ws-max-size", "65536"])
        #expect(try stack.client("ws://127.0.0.1:\(stack.pool.httpPort!)/echo", "oversized")["close"] as? Int == 1009)
        #expect(try stack.client("ws://127.0.0.1:\(stack.front!.port)/echo", "oversized")["close"] as? Int == 1009)
        try stack.front!.stop()
        try stack.pool.stop()
        #expect(stack.pool.log.contains("closed with 1009"))
    }

    // MARK: bad input, with raw sockets

    static let handshake =
        "GET /echo HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    /// Reads until the 101's head has arrived; returns what came after it.
    static func readSwitch(_ socket: TestSocket) throws -> [UInt8] {
        var got: [UInt8] = []
        while true {
            got += try socket.readSome()
            if let end = got.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: got[..<end.lowerBound], as: UTF8.self)
                #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
                #expect(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "RFC 6455's sample Sec-WebSocket-Accept")
                return Array(got[end.upperBound...])
            }
        }
    }

    /// The first close frame the server sends: its code.
    static func closeCode(_ socket: TestSocket, after early: [UInt8]) throws -> Int? {
        var got = early
        while got.count < 4 {
            let more = try socket.readSome()
            if more.isEmpty { return nil }
            got += more
        }
        guard got[0] == 0x88 else { return nil }
        return Int(got[2]) << 8 | Int(got[3])
    }

    @Test func unmaskedTruncatedAndBadHandshakes() throws {
        let stack = try Stack()
        for port in [stack.pool.httpPort!, stack.front!.port] {
            // An unmasked client frame: 1002.
            let unmasked = try TestSocket(tcpPort: port)
            try unmasked.write(Self.handshake)
            let early = try Self.readSwitch(unmasked)
            try unmasked.write([0x81, 0x02, 0x68, 0x69])
            #expect(try Self.closeCode(unmasked, after: early) == 1002, "port \(port)")

            // A frame cut short, then the client goes: the app sees the connection end, the pool serves on.
            let truncated = try TestSocket(tcpPort: port)
            try truncated.write(Self.handshake)
            _ = try Self.readSwitch(truncated)
            try truncated.write([0x81, 0xFE, 0x10])
            shutdown(truncated.fd, Int32(SHUT_RDWR))

            // A key that is not 16 bytes of base64: 400, with or without keel in between.
            let bad = try HTTPClient.request(
                port: port, "/echo",
                headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "not-a-key"),
                          ("Sec-WebSocket-Version", "13")])
            #expect(bad.status == 400)
        }
        try Harness.waitUntil("the app to see both cut connections end", seconds: 10) {
            (try? String(contentsOfFile: stack.directory + "/ws-disconnect", encoding: .utf8))?
                .split(separator: "\n").count ?? 0 >= 4
        }
        #expect(try HTTPClient.get(port: stack.pool.httpPort!, "/").text == "plain http answer")
        try stack.front!.stop()
        try stack.pool.stop()
        #expect(stack.pool.log.contains("the client sent an unmasked client frame: closed with 1002"))
        #expect(stack.pool.log.contains("Sec-WebSocket-Key must be 16 bytes in base64: 400"))
    }
}
