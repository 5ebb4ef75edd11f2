import NIOCore
import NIOHTTP1
import Testing

@testable import KeelFront

@Suite struct TLSConfigTests {
    @Test func tlsSectionAndListenersParse() throws {
        let config = try ConfigLoader.parse(
            toml: """
                [[listen]]
                address = "0.0.0.0:443"
                tls = true
                [[listen]]
                address = "0.0.0.0:80"
                redirect_to_https = true
                [tls]
                min_version = "TLSv1.3"
                ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"
                session_timeout = "10m"
                session_cache_size = 0
                session_tickets = false
                ticket_key_rotation = "2h"
                handshake_timeout = "5s"
                hsts = "max-age=63072000"
                prefer_server_ciphers = true
                [[tls.certificate]]
                cert = "site.pem"
                key = "/etc/keel/site.key"
                """, file: "/etc/keel/keel.toml")
        #expect(config.listeners.map(\.tls) == [true, false])
        #expect(config.listeners.map(\.redirectToHTTPS) == [false, true])
        let tls = try #require(config.tls)
        #expect(tls.settings.certificates.map(\.chainPath) == ["/etc/keel/site.pem"])
        #expect(tls.settings.certificates.map(\.keyPath) == ["/etc/keel/site.key"])
        #expect(tls.settings.minimumVersion == .tls13)
        #expect(tls.settings.ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256")
        #expect(tls.settings.sessionTimeout == 600)
        #expect(tls.settings.sessionCacheSize == 0)
        #expect(tls.settings.sessionTickets == false)
        #expect(tls.settings.ticketKeyRotation == 7200)
        #expect(tls.handshakeTimeout == .seconds(5))
        #expect(tls.hsts == "max-age=63072000")
        #expect(tls.settings.preferServerCiphers)
        #expect(tls.certificateKeys == ["tls.certificate[0]"])
    }

    @Test(arguments: [
        ("/a/b?c=d", "example.com", 443, "https://example.com/a/b?c=d"),
        ("/", "example.com:8080", 8443, "https://example.com:8443/"),
        ("/x", "[::1]:8080", 8443, "https://[::1]:8443/x"),
        ("http://other.test:81/p?q", "example.com", 443, "https://other.test/p?q"),
    ])
    func redirectsKeepHostPathAndQuery(target: String, host: String, port: Int, location: String) throws {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
        head.headers.add(name: "Host", value: host)
        let connection = ClientRequest.ConnectionInfo(remoteAddress: "127.0.0.1", remotePort: 1, serverAddress: "127.0.0.1", serverPort: 80, isTLS: false)
        let request = try ClientRequest(head: head, connection: connection, startTime: .now())
        #expect(ProxyHandler.httpsLocation(for: request, port: port) == location)
    }
}
