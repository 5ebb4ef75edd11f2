import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TLS on the system OpenSSL, checked with real peers: curl and `openssl s_client`.
@Suite("keel: TLS", .serialized, .timeLimit(.minutes(3)))
struct FrontTLSTests {
    static func config(socket: String, hsts: Bool = true) -> String {
        """
        [[listen]]
        address = "127.0.0.1:{PORT}"
        tls = true

        [[listen]]
        address = "127.0.0.1:{PORT2}"
        redirect_to_https = true

        [tls]
        handshake_timeout = "1s"
        \(hsts ? "hsts = \"max-age=31536000; includeSubDomains\"" : "")

        [[tls.certificate]]
        cert = "{DIR}/one.pem"
        key = "{DIR}/one.key"

        [[tls.certificate]]
        cert = "{DIR}/two.pem"
        key = "{DIR}/two.key"

        [limits]
        client_max_body_size = "16m"

        [log]
        access = "off"

        [[route]]
        path = "/"
        uwsgi = "unix:\(socket)"

        [[route]]
        path = "/files/"
        static = "{DIR}/files"
        """
    }

    /// A keel with two certificates (one.test, the default, and two.test) in front of a pool running `app`.
    static func start(app: String) throws -> Fixture {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", app])
        let directory = try Harness.makeTempDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/files", withIntermediateDirectories: true)
        _ = try TLSTools.makeCertificate(in: directory, name: "one", names: ["one.test", "localhost"])
        _ = try TLSTools.makeCertificate(in: directory, name: "two", names: ["two.test", "*.two.test"])
        let keel = try FrontUnderTest(config: config(socket: pool.socketPath!), directory: directory)
        return Fixture(keel: keel, pool: pool)
    }

    /// Holds both processes for the test's duration (dropping the pool would stop it).
    struct Fixture {
        let keel: FrontUnderTest
        let pool: PoolUnderTest
    }

    static func curl(_ arguments: String) throws -> (code: Int32, output: String) {
        try TLSTools.shell("curl -sk --max-time 30 \(arguments)", seconds: 40)
    }

    @Test func curlOverTLS13AndTLS12ReachesThePoolWithHTTPSVars() throws {
        let fixture = try Self.start(app: "env")
        let keel = fixture.keel
        for version in ["--tlsv1.3 --tls-max 1.3", "--tlsv1.2 --tls-max 1.2"] {
            let result = try Self.curl("-v \(version) https://127.0.0.1:\(keel.port)/vars?x=1")
            #expect(result.code == 0, "\(result.output)")
            #expect(result.output.contains(version.hasPrefix("--tlsv1.3") ? "SSL connection using TLSv1.3" : "SSL connection using TLSv1.2"))
            #expect(result.output.contains("\"HTTPS\": \"on\""))
            #expect(result.output.contains("\"REQUEST_SCHEME\": \"https\""))
            // curl offers h2 first, and TLS listeners offer it by default (http/1.1: FrontHTTP2Tests).
            #expect(result.output.contains("ALPN: server accepted h2"))
            #expect(result.output.lowercased().contains("< strict-transport-security: max-age=31536000; includesubdomains"))
        }
    }

    @Test func aCertificateChainIsSentWholeAndVerifiesAgainstItsCA() throws {
        let directory = try Harness.makeTempDirectory()
        let script = """
            cd '\(directory)' &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
              -subj '/CN=Keel test CA' -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign' &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj '/CN=localhost' &&
            printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > leaf.ext &&
            openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem &&
            cat leaf.pem ca.pem > chain.pem
            """
        let made = try TLSTools.shell(script)
        #expect(made.code == 0, "\(made.output)")
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "hello"])
        let keel = try FrontUnderTest(
            ["--uwsgi", "unix:" + pool.socketPath!, "--cert", directory + "/chain.pem", "--key", directory + "/leaf.key", "--access-log", "off"],
            directory: directory, tls: true)
        let shown = try TLSTools.sClient(port: keel.port, "-showcerts -servername localhost")
        #expect(shown.components(separatedBy: "-----BEGIN CERTIFICATE-----").count - 1 == 2, "\(shown)")
        let verified = try TLSTools.sClient(port: keel.port, "-CAfile \(directory)/ca.pem -verify_return_error -verify_hostname localhost -servername localhost")
        #expect(verified.contains("Verify return code: 0 (ok)"), "\(verified)")
        #expect(verified.contains("200 OK"))
    }

    @Test func tls11IsRefused() throws {
        let fixture = try Self.start(app: "hello")
        let keel = fixture.keel
        let output = try TLSTools.sClient(port: keel.port, "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'")
        #expect(output.contains("alert protocol version") || output.contains("no protocols available") || output.contains("unsupported protocol"), "\(output)")
        #expect(!output.contains("200 OK"))
        let modern = try TLSTools.sClient(port: keel.port, "-tls1_2")
        #expect(modern.contains("200 OK"))
    }

    @Test func sniChoosesTheCertificateAndUnknownNamesGetTheDefault() throws {
        let fixture = try Self.start(app: "hello")
        let keel = fixture.keel
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port, "-servername two.test")) == "two.test")
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port, "-servername a.two.test")) == "two.test")
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port, "-servername one.test")) == "one.test")
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port, "-servername unknown.example")) == "one.test")
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port, "-noservername")) == "one.test")
    }

    @Test func sessionsAreResumedByTicketAndByTheSessionCache() throws {
        let fixture = try Self.start(app: "hello")
        let keel = fixture.keel
        let directory = keel.directory
        for (name, options) in [("tls13-ticket", "-tls1_3"), ("tls12-ticket", "-tls1_2"), ("tls12-cache", "-tls1_2 -no_ticket")] {
            let first = try TLSTools.sClient(port: keel.port, "\(options) -sess_out \(directory)/\(name).session")
            #expect(first.contains("New, TLS"), "\(name): \(first)")
            let second = try TLSTools.sClient(port: keel.port, "\(options) -sess_in \(directory)/\(name).session")
            #expect(second.contains("Reused, TLS"), "\(name): \(second)")
            #expect(second.contains("200 OK"))
        }
    }

    @Test func alpnNegotiatesH2OrHTTP11() throws {
        let fixture = try Self.start(app: "hello")
        let keel = fixture.keel
        // Its HTTP/1.0 request is no HTTP/2 preface: keel's binary GOAWAY follows, so only the ALPN line is kept.
        let offered = try TLSTools.shell(
            "(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | openssl s_client -connect 127.0.0.1:\(keel.port) -alpn h2,http/1.1 2>&1 | grep -a 'ALPN'"
        ).output
        #expect(offered.contains("ALPN protocol: h2"), "\(offered)")
        let http11 = try TLSTools.sClient(port: keel.port, "-alpn http/1.1")
        #expect(http11.contains("ALPN protocol: http/1.1"), "\(http11)")
        #expect(http11.contains("200 OK"))
        // Nothing in common: no ALPN, and the client speaks HTTP/1.1 (as nginx treats it).
        let unknown = try TLSTools.sClient(port: keel.port, "-alpn spdy/3")
        #expect(unknown.contains("No ALPN negotiated"), "\(unknown)")
        #expect(unknown.contains("200 OK"))
    }

    @Test func garbageTruncatedHellosAndIdleConnectionsAreClosedWhileOthersAreServed() throws {
        let fixture = try Self.start(app: "hello")
        let keel = fixture.keel
        let garbage = try TestSocket(tcpPort: keel.port)
        garbage.setTimeout(seconds: 5)
        try garbage.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let truncated = try TestSocket(tcpPort: keel.port)
        truncated.setTimeout(seconds: 5)
        try truncated.write([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])  // a ClientHello that never finishes
        let idle = try TestSocket(tcpPort: keel.port)
        idle.setTimeout(seconds: 5)

        let served = try Self.curl("https://127.0.0.1:\(keel.port)/")
        #expect(served.output == "Hello world!\n")
        let started = Date()
        // Garbage gets an alert (or nothing) and EOF at once; the other two at the 1 s handshake timeout.
        _ = try garbage.readToEOF()
        #expect(Date().timeIntervalSince(started) < 1)
        #expect(try truncated.readToEOF().isEmpty)
        #expect(try idle.readToEOF().isEmpty)
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(try Self.curl("https://127.0.0.1:\(keel.port)/").output == "Hello world!\n")
        #expect(keel.log.contains("TLS handshake with 127.0.0.1") && keel.log.contains("timed out"))
    }

    @Test func a20MiBDownloadAnd5MiBUploadAreByteExact() throws {
        let fixture = try Self.start(app: "echo")
        let keel = fixture.keel
        let upload = testBytes(count: 5 << 20, seed: 7)
        try Data(upload).write(to: URL(fileURLWithPath: keel.directory + "/up.bin"))
        let echoed = try Self.curl(
            "--data-binary @\(keel.directory)/up.bin -H 'Content-Type: application/octet-stream' -o \(keel.directory)/echoed.bin "
                + "https://127.0.0.1:\(keel.port)/echo")
        #expect(echoed.code == 0, "\(echoed.output)")
        let echoedSame = try Data(contentsOf: URL(fileURLWithPath: keel.directory + "/echoed.bin")) == Data(upload)
        #expect(echoedSame)

        // A static file goes through the TLS handler as file regions read in slices (no sendfile under TLS).
        let download = testBytes(count: 20 << 20, seed: 9)
        try Data(download).write(to: URL(fileURLWithPath: keel.directory + "/files/big.bin"))
        let fetched = try Self.curl("-o \(keel.directory)/down.bin https://127.0.0.1:\(keel.port)/files/big.bin")
        #expect(fetched.code == 0, "\(fetched.output)")
        let downloadSame = try Data(contentsOf: URL(fileURLWithPath: keel.directory + "/down.bin")) == Data(download)
        #expect(downloadSame)
    }

    @Test func aStreamedResponseOf20MiBIsByteExact() throws {
        let fixture = try Self.start(app: "stream")
        let keel = fixture.keel
        let result = try Self.curl("-o \(keel.directory)/stream.bin 'https://127.0.0.1:\(keel.port)/s?text=1&chunks=20&size=1048576'")
        #expect(result.code == 0, "\(result.output)")
        let body = try Data(contentsOf: URL(fileURLWithPath: keel.directory + "/stream.bin"))
        let expected = (0..<20).flatMap { [UInt8](repeating: UInt8(ascii: "a") + UInt8($0 % 26), count: 1 << 20) }
        #expect(body.count == expected.count)
        let same = body == Data(expected)
        #expect(same)
    }

    @Test func plaintextListenerRedirectsToHTTPS() throws {
        let fixture = try Self.start(app: "hello")
        let keel = fixture.keel
        let reply = try HTTPClient.request(port: keel.port2, "/a/b?c=d")
        #expect(reply.status == 301)
        #expect(reply.header("Location") == "https://127.0.0.1:\(keel.port)/a/b?c=d")
        let named = try TLSTools.shell("curl -si -H 'Host: example.test:\(keel.port2)' 'http://127.0.0.1:\(keel.port2)/x?y'")
        #expect(named.output.contains("Location: https://example.test:\(keel.port)/x?y"), "\(named.output)")
        #expect(reply.header("Strict-Transport-Security") == nil)  // HSTS is only ever sent over TLS
    }

    @Test func hupLoadsANewCertificateWhileAnOpenConnectionCarriesOn() throws {
        let fixture = try Self.start(app: "sleep")
        let (keel, pool) = (fixture.keel, fixture.pool)
        _ = try TLSTools.makeCertificate(in: keel.directory, name: "three", names: ["three.test", "localhost"])
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port, "-servername localhost")) == "one.test")
        // One curl, two requests on one HTTP/1.1 keep-alive connection; the HUP lands while the first is running (an h2
        // connection would get a GOAWAY instead: FrontHTTP2Tests).
        let url = "https://127.0.0.1:\(keel.port)/s?ms=1500"
        let directory = keel.directory
        let port = keel.port
        let inFlight = Thread { _ = try? TLSTools.shell("curl -skv --http1.1 --max-time 20 '\(url)' '\(url)' > \(directory)/keepalive.out 2>&1", seconds: 25) }
        inFlight.start()
        try Harness.waitUntil("the first request to be sent", seconds: 10) {
            ((try? String(contentsOfFile: directory + "/keepalive.out", encoding: .utf8)) ?? "").contains("> GET /s?ms=1500")
        }
        let rewritten = Self.config(socket: pool.socketPath!).replacingOccurrences(of: "{DIR}/one.", with: "{DIR}/three.")
        try keel.rewriteConfig(rewritten)
        kill(keel.process.pid, SIGHUP)
        try Harness.waitUntil("the reload", seconds: 10) { keel.log.contains("configuration reloaded") }
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: port, "-servername localhost")) == "three.test")
        try Harness.waitUntil("both keep-alive requests", seconds: 20) {
            ((try? String(contentsOfFile: directory + "/keepalive.out", encoding: .utf8)) ?? "").components(separatedBy: "slept 1500 ms").count == 3
        }
        let transcript = try String(contentsOfFile: directory + "/keepalive.out", encoding: .utf8)
        #expect(transcript.contains("Re-using existing connection") || transcript.contains("Reusing existing"), "\(transcript)")
        #expect(transcript.contains("CN=one.test"))
        #expect(!transcript.contains("CN=three.test"))
    }

    @Test func aBadCertificateOnHUPKeepsTheOldOne() throws {
        let fixture = try Self.start(app: "hello")
        let (keel, pool) = (fixture.keel, fixture.pool)
        let broken = Self.config(socket: pool.socketPath!).replacingOccurrences(of: "{DIR}/one.key", with: "{DIR}/two.key")
        try keel.rewriteConfig(broken)
        kill(keel.process.pid, SIGHUP)
        try Harness.waitUntil("the reload to fail", seconds: 10) { keel.log.contains("reload failed") }
        #expect(keel.log.contains("tls.certificate[0].key"))
        #expect(keel.log.contains("does not match the certificate"))
        #expect(TLSTools.subjectCN(in: try TLSTools.sClient(port: keel.port)) == "one.test")
    }

    @Test func httpUpstreamsHearXForwardedProtoHTTPS() throws {
        let pool = try PoolUnderTest(["--app", "env"])
        defer { withExtendedLifetime(pool) {} }
        let directory = try Harness.makeTempDirectory()
        let (cert, key) = try TLSTools.makeCertificate(in: directory, name: "one", names: ["localhost"])
        let keel = try FrontUnderTest(
            ["--proxy", "127.0.0.1:\(pool.httpPort!)", "--cert", cert, "--key", key, "--access-log", "off"], directory: directory, tls: true)
        let result = try Self.curl("https://127.0.0.1:\(keel.port)/")
        #expect(result.output.contains("\"HTTP_X_FORWARDED_PROTO\": \"https\""), "\(result.output)")
    }

    @Test(arguments: [
        (["--cert", "/nonexistent.pem", "--key", "/nonexistent.key"], "command line: --cert[0]: cannot read \"/nonexistent.pem\": No such file or directory"),
        (["--cert", "{DIR}/one.pem"], "--cert and --key come in pairs: 1 --cert but 0 --key"),
        (["--cert", "{DIR}/one.pem", "--key", "{DIR}/two.key"], "--key[0]: \"{DIR}/two.key\" does not match the certificate"),
        (["--cert", "{DIR}/one.key", "--key", "{DIR}/one.key"], "--cert[0]: \"{DIR}/one.key\" is not a PEM certificate chain"),
        ([], "listen[0]: a TLS listener needs a certificate"),
    ])
    func certificateProblemsStopStartupWithOneLine(arguments: [String], message: String) throws {
        let directory = try Harness.makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try TLSTools.makeCertificate(in: directory, name: "one", names: ["one.test"])
        _ = try TLSTools.makeCertificate(in: directory, name: "two", names: ["two.test"])
        let port = try Harness.freePort()
        let resolved = arguments.map { $0.replacingOccurrences(of: "{DIR}", with: directory) }
        for command in [["check"], []] {
            let process = try ManagedProcess(
                Harness.keelPath, command + ["--tls-listen", "127.0.0.1:\(port)", "--uwsgi", "unix:/tmp/none.sock"] + resolved,
                logPath: directory + "/out")
            #expect(try process.waitForExit(seconds: 20) == 2)
            let expected = message.replacingOccurrences(of: "{DIR}", with: directory)
            #expect(process.log.contains(expected), "\(process.log)")
            #expect(process.log.split(separator: "\n").count == 1, "\(process.log)")
        }
    }
}
