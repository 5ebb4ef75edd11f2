import Testing
@testable import KeelTLS

#if canImport(Glibc)
import Glibc
#endif

@Suite struct TLSServerContextTests {
    static let directory = TestCertificates.directory()

    func failure(_ configuration: TLSConfiguration) -> TLSContextError? {
        do {
            _ = try TLSServerContext(configuration: configuration)
            return nil
        } catch {
            return error
        }
    }

    @Test func aMissingCertificateNamesTheFile() throws {
        let good = try TestCertificates.make(in: Self.directory, name: "missing-cert", dnsNames: ["a.test"])
        let error = failure(TLSConfiguration(certificates: [.init(chainPath: "/nonexistent/cert.pem", keyPath: good.keyPath)]))
        #expect(error?.part == .certificate)
        #expect(error?.certificateIndex == 0)
        #expect(error?.message == "cannot read \"/nonexistent/cert.pem\": No such file or directory")
    }

    @Test func aMissingKeyNamesTheFile() throws {
        let good = try TestCertificates.make(in: Self.directory, name: "missing-key", dnsNames: ["a.test"])
        let error = failure(TLSConfiguration(certificates: [.init(chainPath: good.chainPath, keyPath: "/nonexistent/key.pem")]))
        #expect(error?.part == .key)
        #expect(error?.message.hasPrefix("cannot read \"/nonexistent/key.pem\"") == true)
    }

    @Test func aKeyOfAnotherCertificateIsRefused() throws {
        let one = try TestCertificates.make(in: Self.directory, name: "pair-one", dnsNames: ["a.test"])
        let two = try TestCertificates.make(in: Self.directory, name: "pair-two", dnsNames: ["b.test"])
        let error = failure(TLSConfiguration(certificates: [one, .init(chainPath: one.chainPath, keyPath: two.keyPath)]))
        #expect(error?.part == .key)
        #expect(error?.certificateIndex == 1)
        #expect(error?.message.contains("does not match the certificate") == true)
    }

    @Test func aFileThatIsNotPEMIsRefused() throws {
        let good = try TestCertificates.make(in: Self.directory, name: "not-pem", dnsNames: ["a.test"])
        let junk = "\(Self.directory)/junk.pem"
        let fd = open(junk, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = write(fd, "hello", 5)
        close(fd)
        let error = failure(TLSConfiguration(certificates: [.init(chainPath: junk, keyPath: good.keyPath)]))
        #expect(error?.part == .certificate)
        #expect(error?.message.contains("is not a PEM certificate chain") == true)
        let keyError = failure(TLSConfiguration(certificates: [.init(chainPath: good.chainPath, keyPath: junk)]))
        #expect(keyError?.part == .key)
        #expect(keyError?.message.contains("is not an unencrypted PEM private key") == true)
    }

    @Test func badCipherListsAreSettingsErrors() throws {
        let good = try TestCertificates.make(in: Self.directory, name: "ciphers", dnsNames: ["a.test"])
        var configuration = TLSConfiguration(certificates: [good])
        configuration.ciphers = "NOT-A-CIPHER"
        #expect(failure(configuration)?.part == .setting("ciphers"))
        configuration.ciphers = TLSConfiguration.modernCiphers
        configuration.cipherSuites = "TLS_NOPE"
        #expect(failure(configuration)?.part == .setting("cipher_suites"))
    }

    @Test func anExpiredCertificateIsAWarningNotAFailure() throws {
        let good = try TestCertificates.make(in: Self.directory, name: "expiring", dnsNames: ["a.test"], days: 1)
        let context = try TLSServerContext(configuration: TLSConfiguration(certificates: [good]), now: Int(time(nil)) + 3 * 86400)
        #expect(context.warnings.count == 1)
        #expect(context.warnings.first?.contains("expired on") == true)
        #expect(try TLSServerContext(configuration: TLSConfiguration(certificates: [good])).warnings.isEmpty)
    }

    @Test func ticketKeysRotateAndOldOnesStillOpenTickets() {
        let keys = SessionTicketKeys()
        keys.setRotation(seconds: 100)
        let first = keys.current(now: 1000)
        #expect(keys.current(now: 1050).name == first.name)
        let second = keys.current(now: 1100)
        #expect(second.name != first.name)
        let opened = first.name.withUnsafeBufferPointer { keys.key(named: $0.baseAddress!) }
        #expect(opened?.isCurrent == false)
        _ = keys.current(now: 1200)
        _ = keys.current(now: 1300)
        #expect(first.name.withUnsafeBufferPointer { keys.key(named: $0.baseAddress!) } == nil)
    }
}
