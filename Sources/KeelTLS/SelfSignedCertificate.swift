internal import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// A self-signed ECDSA P-256 certificate for local development (keel's demo HTTPS listener): made with OpenSSL's
/// API, so no `openssl` binary is needed, and never for production (clients warn about it).
public enum SelfSignedCertificate {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Writes a new key (mode 0600) and certificate valid for `days` for `dnsNames` and `ipAddresses`.
    public static func write(
        certificatePath: String, keyPath: String, dnsNames: [String] = ["localhost"],
        ipAddresses: [String] = ["127.0.0.1", "::1"], days: Int = 365
    ) throws(Failure) {
        ERR_clear_error()
        guard let key = generateKey() else { throw Failure(description: "cannot generate a P-256 key: \(OpenSSLErrors.drain())") }
        defer { EVP_PKEY_free(key) }
        guard let certificate = X509_new() else { throw Failure(description: "out of memory") }
        defer { X509_free(certificate) }
        let serial = SessionTicketKeys.randomBytes(8).reduce(0) { ($0 << 8) | Int($1) } & Int(Int32.max)
        let subjectAltName = (dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }).joined(separator: ",")
        var ok = X509_set_version(certificate, 2) == 1
            && ASN1_INTEGER_set(X509_get_serialNumber(certificate), serial) == 1
            && X509_gmtime_adj(X509_getm_notBefore(certificate), -3600) != nil
            && X509_gmtime_adj(X509_getm_notAfter(certificate), days * 86400) != nil
            && X509_set_pubkey(certificate, key) == 1
        if ok, let name = X509_get_subject_name(certificate) {
            ok = X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, "Keel development certificate", -1, -1, 0) == 1
                && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, dnsNames.first ?? "localhost", -1, -1, 0) == 1
                && X509_set_issuer_name(certificate, name) == 1
        }
        var extensionContext = X509V3_CTX()
        X509V3_set_ctx(&extensionContext, certificate, certificate, nil, nil, 0)
        for (nid, value) in [
            (NID_basic_constraints, "critical,CA:FALSE"), (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, "serverAuth"), (NID_subject_alt_name, subjectAltName),
        ] where ok {
            guard let ext = X509V3_EXT_conf_nid(nil, &extensionContext, nid, value) else {
                ok = false
                break
            }
            ok = X509_add_ext(certificate, ext, -1) == 1
            X509_EXTENSION_free(ext)
        }
        guard ok, X509_sign(certificate, key, EVP_sha256()) > 0 else {
            throw Failure(description: "cannot build the certificate: \(OpenSSLErrors.drain())")
        }
        try writePEM(to: keyPath, mode: 0o600) { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        try writePEM(to: certificatePath, mode: 0o644) { PEM_write_bio_X509($0, certificate) }
    }

    /// True when the file holds a certificate that is valid now and for at least another day.
    public static func isUsable(certificatePath: String) -> Bool {
        guard let bio = BIO_new_file(certificatePath, "r") else {
            ERR_clear_error()
            return false
        }
        defer { BIO_free(bio) }
        guard let certificate = PEM_read_bio_X509(bio, nil, nil, nil) else {
            ERR_clear_error()
            return false
        }
        defer { X509_free(certificate) }
        return CertificateInfo.validityProblem(of: certificate, now: time(nil) + 86400) == nil
    }

    private static func generateKey() -> OpaquePointer? {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1,
            EVP_PKEY_generate(context, &key) == 1
        else { return nil }
        return key
    }

    private static func writePEM(to path: String, mode: mode_t, _ body: (OpaquePointer) -> Int32) throws(Failure) {
        guard let bio = BIO_new(BIO_s_mem()) else { throw Failure(description: "out of memory") }
        defer { BIO_free(bio) }
        guard body(bio) == 1 else { throw Failure(description: "cannot encode \(path): \(OpenSSLErrors.drain())") }
        let count = Int(BIO_ctrl_pending(bio))
        var bytes = [UInt8](repeating: 0, count: count)
        _ = BIO_read(bio, &bytes, Int32(count))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fchmod(fd, mode)
        var offset = 0
        while offset < count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}
