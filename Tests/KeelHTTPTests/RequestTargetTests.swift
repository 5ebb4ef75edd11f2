import Testing

@testable import KeelHTTP

@Suite struct RequestTargetTests {
    @Test(arguments: [
        ("/", RequestTarget.Form.origin, "/", "/", "", nil),
        ("/p?", .origin, "/p?", "/p", "", nil),
        ("/p?a=1?b=2", .origin, "/p?a=1?b=2", "/p", "a=1?b=2", nil),
        ("/a%20b?q=%41", .origin, "/a%20b?q=%41", "/a%20b", "q=%41", nil),
        ("*", .asterisk, "*", "*", "", nil),
        ("http://example.com/p?q=1", .absolute, "/p?q=1", "/p", "q=1", "example.com"),
        ("HTTPS://h:8443/a/b", .absolute, "/a/b", "/a/b", "", "h:8443"),
        ("http://h", .absolute, "/", "/", "", "h"),
        ("http://h?x=1", .absolute, "/?x=1", "/", "x=1", "h"),
        ("http://[::1]:8080/x", .absolute, "/x", "/x", "", "[::1]:8080"),
        ("http://h:/x", .absolute, "/x", "/x", "", "h:"),
        ("example.com:443", .authority, "", "", "", "example.com:443"),
    ] as [(String, RequestTarget.Form, String, String, String, String?)])
    func targetsAreSplit(
        uri: String, form: RequestTarget.Form, origin: String, path: String, query: String, authority: String?
    ) throws {
        let target = try #require(RequestTarget(parsing: uri))
        #expect(target.form == form)
        #expect(target.originForm == origin[...])
        #expect(target.path == path[...])
        #expect(target.query == query[...])
        #expect(target.authority.map(String.init) == authority)
    }

    /// nginx answers these 400: a broken authority, a userinfo, a bad port, no host, a ".." host label.
    @Test(arguments: [
        "", "s://]ufd/:", "http://user@host/", "http://user:pw@host/p", "http://h:8x/", "http:///p", "http://[::1/",
        "http://[]/", "http://a..b/", "http://h h/", "1http://h/", "ht tp://h/", "h]:80",
    ])
    func malformedTargetsAreRefused(uri: String) {
        #expect(RequestTarget(parsing: uri) == nil)
    }
}

@Suite struct PercentDecodingTests {
    @Test(arguments: [
        ("", ""), ("/plain/path", "/plain/path"), ("%41%42", "AB"), ("/a%20b", "/a b"), ("%2F", "/"), ("%2f", "/"),
        ("/a%2Fb%2fc", "/a/b/c"), ("%C3%A9", "é"), ("%c3%a9t%C3%A9", "été"), ("%E2%82%AC", "€"), ("é%20", "é "),
    ])
    func validEscapesAreDecoded(input: String, expected: String) {
        #expect(PercentDecoding.pathInfo(input[...]) == expected)
    }

    /// A malformed escape leaves the whole path as it came (nginx would refuse it; the app gets it undecoded).
    @Test(arguments: ["%zz", "/x%4", "%", "/a%", "%4g", "%g4", "%%41", "100%", "%%", "/a%20b%zz"])
    func malformedEscapesLeaveThePathAsItIs(input: String) {
        #expect(PercentDecoding.bytes(input.utf8) == nil)
        #expect(PercentDecoding.pathInfo(input[...]) == input)
    }

    @Test func anEncodedNULLeavesThePathAsItIs() {
        #expect(PercentDecoding.bytes("/a%00b".utf8) == [0x2F, 0x61, 0, 0x62])
        #expect(PercentDecoding.pathInfo("/a%00b") == "/a%00b")
    }

    /// Bytes that are not UTF-8 are read as Latin-1, so every byte survives as one character.
    @Test(arguments: [
        ("%E9", "é"), ("/caf%E9", "/café"), ("%FF%FE", "ÿþ"), ("%C3", "Ã"), ("%C3%A9%FF", "Ã©ÿ"),
    ])
    func nonUTF8IsDecodedAsLatin1(input: String, expected: String) {
        #expect(PercentDecoding.pathInfo(input[...]) == expected)
    }

    @Test func decodesASubstringInsideALargerString() {
        let uri = "/a%20b?c=%20"
        #expect(PercentDecoding.pathInfo(uri[..<uri.firstIndex(of: "?")!]) == "/a b")
    }
}
