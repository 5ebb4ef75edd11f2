import Testing

@testable import KeelWSGI

@Suite("PATH_INFO raw bytes")
struct RawPathTests {
    @Test func asciiPathNeedsNoRecovery() {
        #expect(RawPath.bytes(of: "/a/b", requestURI: "/a/b?x") == nil)
    }

    @Test func utf8PathGivesItsBytes() {
        #expect(RawPath.bytes(of: "/café", requestURI: "/caf%C3%A9?q=1") == Array("/café".utf8))
    }

    @Test func invalidUTF8PathGivesTheOriginalBytes() {
        // The worker turned these bytes into latin-1 text; the UTF-8 of that text is not what the client sent.
        let pathInfo = String([0x2F, 0xC3, 0xA9, 0xFF].map { Character(Unicode.Scalar(UInt8($0))) })
        #expect(RawPath.bytes(of: pathInfo, requestURI: "/%C3%A9%FF") == [0x2F, 0xC3, 0xA9, 0xFF])
    }

    @Test func rewrittenPathInfoIsKept() {
        #expect(RawPath.bytes(of: "/café", requestURI: "/other") == nil)
    }
}
