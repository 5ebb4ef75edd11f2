internal import COpenSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The keys that encrypt session tickets, shared by every context and kept across reloads (so a HUP does not end
/// resumption). A new key is made every `rotation` seconds; tickets made with the two previous keys still decrypt
/// and are renewed with the current one. Keys live only in memory, as nginx's random per-process keys do.
final class SessionTicketKeys: Sendable {
    static let shared = SessionTicketKeys()

    struct Key {
        var name: [UInt8]  // 16 bytes, written into the ticket to find its key again
        var aesKey: [UInt8]  // AES-256-CBC
        var hmacKey: [UInt8]  // HMAC-SHA256
        var createdAt: Int
    }

    private struct State {
        var keys: [Key] = []  // newest first
        var rotation = 3600
    }

    private let state = Mutex(State())
    static let kept = 3
    /// Fetched once: `EVP_aes_256_cbc()` would make OpenSSL 3 look the cipher up in its provider on every ticket.
    nonisolated(unsafe) private static let cipher: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-CBC", nil)

    /// Sets the rotation period (the latest loaded configuration wins).
    func setRotation(seconds: Int) {
        state.withLock { $0.rotation = max(1, seconds) }
    }

    /// The key to encrypt new tickets with, rotating first when the current one is due.
    func current(now: Int = Int(time(nil))) -> Key {
        state.withLock { state in
            if let newest = state.keys.first, now - newest.createdAt < state.rotation { return newest }
            state.keys.insert(Self.makeKey(now: now), at: 0)
            if state.keys.count > Self.kept { state.keys.removeLast(state.keys.count - Self.kept) }
            return state.keys[0]
        }
    }

    /// The key named in a ticket, and whether it is the current one (else the ticket is renewed).
    func key(named name: UnsafePointer<UInt8>) -> (key: Key, isCurrent: Bool)? {
        state.withLock { state in
            for (index, key) in state.keys.enumerated() where key.name.withUnsafeBufferPointer({ memcmp($0.baseAddress!, name, 16) == 0 }) {
                return (key, index == 0)
            }
            return nil
        }
    }

    private static func makeKey(now: Int) -> Key {
        Key(name: randomBytes(16), aesKey: randomBytes(32), hmacKey: randomBytes(32), createdAt: now)
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&bytes, Int32(count)) == 1, "OpenSSL's RAND_bytes failed: no entropy")
        return bytes
    }

    /// OpenSSL's ticket key callback: enc = 1 makes a ticket, 0 opens one (1 = use, 2 = use and renew, 0 = unknown
    /// key: full handshake, -1 = error).
    static let callback: @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, OpaquePointer?, OpaquePointer?, Int32
    ) -> Int32 = { _, keyName, iv, cipherContext, macContext, encrypt in
        guard let keyName, let iv, let cipherContext, let macContext else { return -1 }
        let keys = SessionTicketKeys.shared
        if encrypt == 1 {
            let key = keys.current()
            key.name.withUnsafeBufferPointer { keyName.update(from: $0.baseAddress!, count: 16) }
            guard RAND_bytes(iv, 16) == 1 else { return -1 }
            guard EVP_EncryptInit_ex(cipherContext, cipher ?? EVP_aes_256_cbc(), nil, key.aesKey, iv) == 1,
                setHMACKey(key.hmacKey, on: macContext)
            else { return -1 }
            return 1
        }
        guard let (key, isCurrent) = keys.key(named: keyName) else { return 0 }
        guard setHMACKey(key.hmacKey, on: macContext),
            EVP_DecryptInit_ex(cipherContext, cipher ?? EVP_aes_256_cbc(), nil, key.aesKey, iv) == 1
        else { return -1 }
        return isCurrent ? 1 : 2
    }

    private static func setHMACKey(_ key: [UInt8], on macContext: OpaquePointer) -> Bool {
        var key = key
        var digest = Array("SHA256".utf8CString)
        return key.withUnsafeMutableBytes { keyBytes in
            digest.withUnsafeMutableBufferPointer { digestName in
                "key".withCString { keyParam in
                    "digest".withCString { digestParam in
                        let params = [
                            OSSL_PARAM_construct_octet_string(keyParam, keyBytes.baseAddress, keyBytes.count),
                            OSSL_PARAM_construct_utf8_string(digestParam, digestName.baseAddress, 0),
                            OSSL_PARAM_construct_end(),
                        ]
                        return EVP_MAC_CTX_set_params(macContext, params) == 1
                    }
                }
            }
        }
    }
}
