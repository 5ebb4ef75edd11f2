internal import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// What keel reads off a loaded certificate: the names it serves and whether it is valid today.
enum CertificateInfo {
    /// DNS subjectAltNames, lowercased; the subject CN when there are none (old certificates).
    static func names(of certificate: OpaquePointer) -> [String] {
        var names: [String] = []
        if let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) {
            let list = OpaquePointer(raw)
            defer { keel_GENERAL_NAMES_free(list) }
            for index in 0..<keel_sk_GENERAL_NAME_num(list) {
                guard let name = keel_sk_GENERAL_NAME_value(list, index), name.pointee.type == GEN_DNS,
                    let text = string(UnsafePointer(name.pointee.d.dNSName))
                else { continue }
                names.append(text.lowercased())
            }
        }
        if names.isEmpty, let subject = X509_get_subject_name(certificate) {
            let position = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
            if position >= 0, let entry = X509_NAME_get_entry(subject, position),
                let text = string(UnsafePointer(X509_NAME_ENTRY_get_data(entry)))
            {
                names.append(text.lowercased())
            }
        }
        return names
    }

    /// "expired on …" or "not valid before …", or nil when valid at `now`.
    static func validityProblem(of certificate: OpaquePointer, now: time_t) -> String? {
        var moment = now
        let notAfter = X509_get0_notAfter(certificate)!
        if X509_cmp_time(notAfter, &moment) < 0 {
            return "the certificate expired on \(text(notAfter)); clients will refuse it until it is renewed"
        }
        let notBefore = X509_get0_notBefore(certificate)!
        if X509_cmp_time(notBefore, &moment) > 0 {
            return "the certificate is not valid before \(text(notBefore)); check the clock or the certificate"
        }
        return nil
    }

    private static func string(_ value: UnsafePointer<ASN1_STRING>?) -> String? {
        guard let value, let bytes = ASN1_STRING_get0_data(value) else { return nil }
        let count = Int(ASN1_STRING_length(value))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    private static func text(_ time: UnsafePointer<ASN1_TIME>) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "?" }
        defer { BIO_free(bio) }
        guard ASN1_TIME_print(bio, time) == 1 else { return "?" }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = BIO_read(bio, &bytes, Int32(bytes.count))
        return count > 0 ? String(decoding: bytes[..<Int(count)], as: UTF8.self) : "?"
    }
}
