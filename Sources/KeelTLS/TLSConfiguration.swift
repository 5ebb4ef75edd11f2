/// How a TLS listener behaves: certificates (the first is the default, the others are chosen by SNI), protocol
/// versions, ciphers, ALPN and session resumption. Parsed and validated by the caller; `TLSServerContext` loads it.
public struct TLSConfiguration: Sendable, Equatable {
    /// A PEM certificate chain (leaf first, then intermediates) and its PEM private key.
    public struct Certificate: Sendable, Equatable {
        public var chainPath: String
        public var keyPath: String
        public init(chainPath: String, keyPath: String) {
            self.chainPath = chainPath
            self.keyPath = keyPath
        }
    }

    /// Protocol versions as nginx's `ssl_protocols` names them.
    public enum ProtocolVersion: String, Sendable, CaseIterable, Comparable {
        case tls1 = "TLSv1"
        case tls11 = "TLSv1.1"
        case tls12 = "TLSv1.2"
        case tls13 = "TLSv1.3"

        var openSSLValue: Int32 {
            switch self {
            case .tls1: 0x0301
            case .tls11: 0x0302
            case .tls12: 0x0303
            case .tls13: 0x0304
            }
        }

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.openSSLValue < rhs.openSSLValue }
    }

    /// Mozilla's "intermediate" TLS 1.2 list (ECDHE with AEAD only), as most nginx deployments use.
    public static let modernCiphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    public var certificates: [Certificate]
    /// Lowest version accepted (default TLS 1.2); TLS 1.3 is always the highest.
    public var minimumVersion: ProtocolVersion = .tls12
    /// TLS 1.2-and-older cipher list in OpenSSL syntax (nginx `ssl_ciphers`).
    public var ciphers: String = TLSConfiguration.modernCiphers
    /// TLS 1.3 suites in OpenSSL syntax (nginx `ssl_conf_command Ciphersuites`); nil keeps OpenSSL's.
    public var cipherSuites: String?
    /// Choose the cipher by the server's order, not the client's (nginx `ssl_prefer_server_ciphers`, off by default
    /// as Mozilla advises: every listed cipher is strong and clients without AES hardware prefer ChaCha20).
    public var preferServerCiphers = false
    /// ALPN protocols offered, most preferred first.
    public var applicationProtocols: [String] = ["http/1.1"]
    /// How long a session may be resumed, in seconds (nginx `ssl_session_timeout`, default 5 minutes).
    public var sessionTimeout: Int = 300
    /// Sessions kept in the server-side cache for clients that do not use tickets (0 = no cache).
    public var sessionCacheSize: Int = 20480
    /// Session tickets on (nginx `ssl_session_tickets`).
    public var sessionTickets = true
    /// Seconds between ticket key rotations; tickets made with the two previous keys are still accepted.
    public var ticketKeyRotation: Int = 3600

    public init(certificates: [Certificate]) {
        self.certificates = certificates
    }
}
