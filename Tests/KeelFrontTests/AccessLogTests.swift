import NIOCore
import Testing

@testable import KeelFront

@Suite struct AccessLogTests {
    @Test func combinedFormatWithRequestAndUpstreamTimes() {
        let entry = AccessLog.Entry(
            remoteAddress: "10.0.0.1", requestLine: "GET /x?y=1 HTTP/1.1", status: 200, bodyBytesSent: 13,
            referer: nil, userAgent: "curl/8.0", requestTime: .milliseconds(1234), upstreamTime: .milliseconds(5))
        #expect(
            AccessLog.format(entry, stamp: "24/Nov/2026:10:00:00 +0000")
                == "10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] \"GET /x?y=1 HTTP/1.1\" 200 13 \"-\" \"curl/8.0\" 1.234 0.005\n")
    }

    @Test func noUpstreamIsADash() {
        let entry = AccessLog.Entry(
            remoteAddress: "::1", requestLine: "GET / HTTP/1.0", status: 404, bodyBytesSent: 0, referer: "http://r/",
            userAgent: nil, requestTime: .zero, upstreamTime: nil)
        #expect(AccessLog.format(entry, stamp: "s").hasSuffix("\"http://r/\" \"-\" 0.000 -\n"))
    }

    @Test func quotesAndControlBytesAreEscapedSoLinesCannotBeForged() {
        #expect(AccessLog.escaped("a\"b\\c\nd") == "a\\x22b\\x5Cc\\x0Ad")
        #expect(AccessLog.escaped("plain") == "plain")
    }
}
