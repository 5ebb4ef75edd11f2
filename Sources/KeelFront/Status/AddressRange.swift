#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One `allow` entry: an IPv4 or IPv6 network in CIDR form ("10.0.0.0/8", "::1/128"), or one address (a full-length
/// prefix). Parsed once at load; matching a client is a byte compare on the rare status-page request.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6, with the bits past the prefix cleared.
    public let network: [UInt8]
    public let prefixLength: Int

    /// `allow`'s default: the loopback networks, as a status page is private until opened up on purpose.
    public static let loopback = [try! AddressRange("127.0.0.0/8"), try! AddressRange("::1/128")]

    public init(_ text: String) throws(ConfigValueError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.addressBytes(String(parts[0])) else {
            throw ConfigValueError(
                "\"\(text)\": not an IP address or CIDR network; write \"10.0.0.0/8\", \"192.168.1.7\" or \"::1/128\"")
        }
        let maximum = bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...maximum).contains(given) else {
                throw ConfigValueError("\"\(text)\": the prefix length after \"/\" must be from 0 to \(maximum)")
            }
            length = given
        }
        var network = bytes
        for index in network.indices {
            let keep = max(0, min(8, length - index * 8))
            network[index] &= keep == 8 ? 0xFF : ~(0xFF >> UInt8(keep))
        }
        guard network == bytes else {
            throw ConfigValueError(
                "\"\(text)\": address bits are set past the /\(length) prefix; did you mean \(Self.format(network))/\(length)?"
            )
        }
        self.network = network
        self.prefixLength = length
    }

    /// Whether `address` (as NIO prints it: "127.0.0.1", "::1", "::ffff:10.1.2.3") lies in this network.
    public func contains(_ address: String) -> Bool {
        guard var bytes = Self.addressBytes(address) else { return false }
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; nginx matches it against IPv4 rules.
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF,
            bytes[11] == 0xFF
        {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == network.count else { return false }
        for index in bytes.indices {
            let keep = max(0, min(8, prefixLength - index * 8))
            let mask: UInt8 = keep == 8 ? 0xFF : ~(0xFF >> UInt8(keep))
            if bytes[index] & mask != network[index] { return false }
        }
        return true
    }

    public var description: String { "\(Self.format(network))/\(prefixLength)" }

    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    private static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        var copy = bytes
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard copy.withUnsafeMutableBytes({ inet_ntop(family, $0.baseAddress, &buffer, 64) }) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
