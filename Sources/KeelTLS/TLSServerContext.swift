internal import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// Loaded, ready-to-use TLS settings: one OpenSSL `SSL_CTX` per certificate (the first is the default), the SNI
/// name index and the ALPN list. Built once per configuration load; a HUP builds a new one for new connections
/// while open connections keep the one they started with (each handler holds its context).
public final class TLSServerContext: @unchecked Sendable {
    public let configuration: TLSConfiguration
    /// The names each certificate answers for (its DNS subjectAltNames, else its CN), in certificate order.
    public let certificateNames: [[String]]
    /// Problems worth a warning that do not stop serving (an expired certificate, one not yet valid).
    public let warnings: [String]

    // Immutable after init: SSL_CTX is safe to share between threads once configured.
    private let contexts: [OpaquePointer]
    private let exactNames: [String: Int]
    /// "example.com" → the certificate for "*.example.com".
    private let wildcardNames: [String: Int]
    /// ALPN protocols in wire format (length-prefixed), read by the selection callback.
    private let alpnWire: UnsafeMutableBufferPointer<UInt8>

    public convenience init(configuration: TLSConfiguration) throws(TLSContextError) {
        try self.init(configuration: configuration, now: Int(time(nil)))
    }

    /// `now` (seconds since the epoch) is what certificates' validity is checked against.
    public init(configuration: TLSConfiguration, now: Int) throws(TLSContextError) {
        guard !configuration.certificates.isEmpty else {
            throw TLSContextError(certificateIndex: nil, part: .certificate, message: "no certificate given")
        }
        self.configuration = configuration
        let wire = configuration.applicationProtocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        alpnWire = .allocate(capacity: wire.count)
        _ = alpnWire.initialize(from: wire)
        var built: [OpaquePointer] = []
        var names: [[String]] = []
        var warnings: [String] = []
        do {
            for (index, certificate) in configuration.certificates.enumerated() {
                let context = try Self.makeContext(configuration)
                built.append(context)
                try Self.load(certificate, index: index, into: context)
                let leaf = SSL_CTX_get0_certificate(context)!
                names.append(CertificateInfo.names(of: leaf))
                if let problem = CertificateInfo.validityProblem(of: leaf, now: time_t(now)) {
                    warnings.append("\(certificate.chainPath): \(problem)")
                }
            }
        } catch {
            for context in built { SSL_CTX_free(context) }
            alpnWire.deallocate()
            throw error
        }
        contexts = built
        certificateNames = names
        self.warnings = warnings
        var exact: [String: Int] = [:]
        var wildcard: [String: Int] = [:]
        for (index, list) in names.enumerated() {
            for name in list {
                if name.hasPrefix("*.") {
                    if wildcard[String(name.dropFirst(2))] == nil { wildcard[String(name.dropFirst(2))] = index }
                } else if exact[name] == nil {
                    exact[name] = index
                }
            }
        }
        exactNames = exact
        wildcardNames = wildcard
        SessionTicketKeys.shared.setRotation(seconds: configuration.ticketKeyRotation)
        let me = Unmanaged.passUnretained(self).toOpaque()
        for context in contexts where !wire.isEmpty {
            SSL_CTX_set_alpn_select_cb(context, Self.selectALPN, me)
        }
        // With one certificate there is nothing to choose: skip the callback on every handshake.
        if contexts.count > 1 {
            _ = keel_SSL_CTX_set_tlsext_servername_callback(contexts[0], Self.selectCertificate)
            _ = keel_SSL_CTX_set_tlsext_servername_arg(contexts[0], me)
        }
    }

    deinit {
        for context in contexts { SSL_CTX_free(context) }
        alpnWire.deallocate()
    }

    /// A new server-side connection on the default context (SNI may switch it during the handshake).
    /// `applicationProtocols` narrows ALPN for this connection (a listener that does not offer all of them).
    func makeConnection(applicationProtocols: [String]? = nil) -> TLSConnection? {
        guard let connection = TLSConnection(context: contexts[0], isServer: true) else { return nil }
        if let applicationProtocols { connection.restrictALPN(to: ALPNWire(applicationProtocols)) }
        return connection
    }

    /// The certificate index an SNI name selects: exact name first, then a wildcard one level up; nil = default.
    public func certificateIndex(forServerName name: String) -> Int? {
        let name = name.lowercased()
        if let index = exactNames[name] { return index }
        guard let dot = name.firstIndex(of: ".") else { return nil }
        return wildcardNames[String(name[name.index(after: dot)...])]
    }

    // MARK: building

    private static func makeContext(_ configuration: TLSConfiguration) throws(TLSContextError) -> OpaquePointer {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSContextError(certificateIndex: nil, part: .setting("tls"), message: "OpenSSL: \(OpenSSLErrors.drain())")
        }
        _ = keel_SSL_CTX_set_min_proto_version(context, configuration.minimumVersion.openSSLValue)
        _ = keel_SSL_CTX_set_max_proto_version(context, TLSConfiguration.ProtocolVersion.tls13.openSSLValue)
        // Debian's OpenSSL refuses TLS < 1.2 at its default security level: a configured legacy minimum must work.
        if configuration.minimumVersion < .tls12 { SSL_CTX_set_security_level(context, 0) }
        _ = SSL_CTX_set_options(context, keel_SSL_OP_NO_COMPRESSION() | keel_SSL_OP_NO_RENEGOTIATION())
        if configuration.preferServerCiphers { _ = SSL_CTX_set_options(context, keel_SSL_OP_CIPHER_SERVER_PREFERENCE()) }
        // No SSL_MODE_RELEASE_BUFFERS: freeing and reallocating the record buffers around every record cost about 8 µs
        // of CPU per keep-alive request (bench/tls.sh); TLSServerHandler frees them once a connection is idle instead.
        _ = keel_SSL_CTX_set1_groups_list(context, "X25519:P-256:P-384")
        // An encrypted key would make OpenSSL prompt on the terminal: refuse instead.
        SSL_CTX_set_default_passwd_cb(context, { _, _, _, _ in 0 })
        guard SSL_CTX_set_cipher_list(context, configuration.ciphers) == 1 else {
            SSL_CTX_free(context)
            throw TLSContextError(
                certificateIndex: nil, part: .setting("ciphers"),
                message: "no cipher in \"\(configuration.ciphers)\" is known to OpenSSL; write an OpenSSL cipher list")
        }
        if let suites = configuration.cipherSuites, SSL_CTX_set_ciphersuites(context, suites) != 1 {
            SSL_CTX_free(context)
            throw TLSContextError(
                certificateIndex: nil, part: .setting("cipher_suites"),
                message: "\"\(suites)\" is not a TLS 1.3 suite list OpenSSL knows (e.g. TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256)")
        }
        ERR_clear_error()
        // Resumption: a server-side cache for session IDs and rotating ticket keys for tickets.
        let sessionContext = Array("keel".utf8)
        _ = SSL_CTX_set_session_id_context(context, sessionContext, UInt32(sessionContext.count))
        _ = SSL_CTX_set_timeout(context, Int(configuration.sessionTimeout))
        if configuration.sessionCacheSize > 0 {
            _ = keel_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_SERVER))
            _ = keel_SSL_CTX_sess_set_cache_size(context, configuration.sessionCacheSize)
        } else {
            _ = keel_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        }
        if configuration.sessionTickets {
            _ = SSL_CTX_set_tlsext_ticket_key_evp_cb(context, SessionTicketKeys.callback)
        } else {
            _ = SSL_CTX_set_options(context, keel_SSL_OP_NO_TICKET())
        }
        return context
    }

    private static func load(_ certificate: TLSConfiguration.Certificate, index: Int, into context: OpaquePointer) throws(TLSContextError) {
        func failure(_ part: TLSContextError.Part, _ message: String) -> TLSContextError {
            TLSContextError(certificateIndex: index, part: part, message: message)
        }
        if let problem = unreadable(certificate.chainPath) { throw failure(.certificate, "cannot read \"\(certificate.chainPath)\": \(problem)") }
        if let problem = unreadable(certificate.keyPath) { throw failure(.key, "cannot read \"\(certificate.keyPath)\": \(problem)") }
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(context, certificate.chainPath) == 1 else {
            throw failure(
                .certificate,
                "\"\(certificate.chainPath)\" is not a PEM certificate chain (OpenSSL: \(OpenSSLErrors.drain())); give the leaf certificate first, then its intermediates")
        }
        guard let key = readPrivateKey(certificate.keyPath) else {
            throw failure(
                .key,
                "\"\(certificate.keyPath)\" is not an unencrypted PEM private key (OpenSSL: \(OpenSSLErrors.drain())); decrypt it with `openssl pkey -in KEY -out KEY.plain`")
        }
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(context, key) == 1, SSL_CTX_check_private_key(context) == 1 else {
            ERR_clear_error()
            throw failure(.key, "\"\(certificate.keyPath)\" does not match the certificate in \"\(certificate.chainPath)\"; give the key the certificate was issued for")
        }
    }

    /// The key in a PEM file; nil if it is not one, or is encrypted (no prompt: the callback gives no passphrase).
    private static func readPrivateKey(_ path: String) -> OpaquePointer? {
        guard let bio = BIO_new_file(path, "r") else { return nil }
        defer { BIO_free(bio) }
        return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
    }

    /// nil when the file can be opened for reading, else why not.
    private static func unreadable(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return String(cString: strerror(errno)) }
        var info = stat()
        defer { close(fd) }
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
        return nil
    }

    // MARK: callbacks (run inside SSL_do_handshake on the connection's event loop)

    private static let selectCertificate: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = {
        ssl, _, argument in
        guard let ssl, let argument, let raw = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else {
            return SSL_TLSEXT_ERR_OK
        }
        let server = Unmanaged<TLSServerContext>.fromOpaque(argument).takeUnretainedValue()
        if let index = server.certificateIndex(forServerName: String(cString: raw)), index != 0 {
            _ = SSL_set_SSL_CTX(ssl, server.contexts[index])
        }
        return SSL_TLSEXT_ERR_OK
    }

    private static let selectALPN: @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?, UnsafePointer<UInt8>?, UInt32,
        UnsafeMutableRawPointer?
    ) -> Int32 = { ssl, out, outLength, offered, offeredLength, argument in
        guard let argument, let out, let outLength, let offered else { return SSL_TLSEXT_ERR_NOACK }
        let server = Unmanaged<TLSServerContext>.fromOpaque(argument).takeUnretainedValue()
        // A connection's own list (set by TLSConnection.restrictALPN) wins over the context's.
        var wire = server.alpnWire
        if let ssl, let own = SSL_get_ex_data(ssl, ALPNWire.exDataIndex) {
            wire = Unmanaged<ALPNWire>.fromOpaque(own).takeUnretainedValue().bytes
        }
        var selected: UnsafeMutablePointer<UInt8>?
        let result = SSL_select_next_proto(&selected, outLength, wire.baseAddress, UInt32(wire.count), offered, offeredLength)
        // No protocol in common: carry on without ALPN (the client will speak HTTP/1.1), as nginx does for http/1.1.
        guard result == OPENSSL_NPN_NEGOTIATED, let selected else { return SSL_TLSEXT_ERR_NOACK }
        out.pointee = UnsafePointer(selected)
        return SSL_TLSEXT_ERR_OK
    }
}

/// An ALPN protocol list in wire format (length-prefixed names), owned by the connection that offers it.
final class ALPNWire {
    /// SSL ex-data slot 0 is OpenSSL's "app data"; nothing else in KeelTLS uses it.
    static let exDataIndex: Int32 = 0
    let bytes: UnsafeMutableBufferPointer<UInt8>

    init(_ protocols: [String]) {
        let wire = protocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        bytes = .allocate(capacity: max(wire.count, 1))
        _ = bytes.initialize(from: wire)
    }

    deinit { bytes.deallocate() }
}
