import KeelApp
import NIOCore
import Testing

@testable import KeelPool

@Suite struct AppRunnerTests {
    struct Boom: Error {}

    static let request = Request(vars: [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/x"), ("PATH_INFO", "/x")])

    static func text(_ response: Response) -> String? {
        if case .bytes(let bytes) = response.body { return String(buffer: bytes) }
        return nil
    }

    @Test func withoutFramingDropsLengthAndTransferEncodingAndKeepsTheRestInOrder() {
        let headers: [(name: String, value: String)] = [
            ("Content-Type", "text/html"),
            ("Content-Length", "5"),
            ("X-A", "1"),
            ("transfer-encoding", "chunked"),
            ("CONTENT-LENGTH", "7"),
            ("Set-Cookie", "a=1"),
            ("Transfer-Encoding", "gzip"),
            ("Content-Length-Extra", "kept"),
            ("Set-Cookie", "b=2"),
        ]
        #expect(
            headers.withoutFraming.map { "\($0.name): \($0.value)" } == [
                "Content-Type: text/html",
                "X-A: 1",
                "Set-Cookie: a=1",
                "Content-Length-Extra: kept",
                "Set-Cookie: b=2",
            ])
    }

    @Test func withoutFramingOfNoHeadersIsEmpty() {
        let headers: [(name: String, value: String)] = []
        #expect(headers.withoutFraming.isEmpty)
    }

    @Test func respondReturnsTheAppsResponse() {
        let handler = ClosureHandler { request in
            Response(status: 201, headers: [("X-Path", request.path)], body: .bytes(ByteBuffer(string: "made")))
        }
        let response = AppRunner.respond(to: Self.request, with: handler)
        #expect(response.status == 201)
        #expect(response.header("X-Path") == "/x")
        #expect(Self.text(response) == "made")
    }

    @Test(arguments: [400, 403, 404, 405, 413, 503])
    func httpErrorKeepsItsStatusAndMessage(status: Int) {
        let handler = ClosureHandler { _ in throw HTTPError(status, "nope \(status)\n") }
        let response = AppRunner.respond(to: Self.request, with: handler)
        #expect(response.status == status)
        #expect(response.header("Content-Type") == "text/plain")
        #expect(Self.text(response) == "nope \(status)\n")
    }

    @Test func anyOtherErrorIsA500() {
        let handler = ClosureHandler { _ in throw Boom() }
        let response = AppRunner.respond(to: Self.request, with: handler)
        #expect(response.status == 500)
        #expect(response.header("Content-Type") == "text/plain")
        #expect(Self.text(response) == "Internal Server Error\n")
    }
}

@Suite struct ResponseValidationTests {
    @Test(arguments: [
        [("X-Ok", "fine")],
        [("Set-Cookie", "a=1; Path=/"), ("X-Empty", "")],
    ])
    func validHeadersPass(headers: [(String, String)]) {
        let response = Response(status: 200, headers: headers.map { (name: $0.0, value: $0.1) }, body: .bytes(ByteBuffer()))
        #expect(AppRunner.invalidHeader(in: response) == nil)
    }

    @Test(arguments: [
        ("X-Bad", "a\r\nInjected: yes"), ("X-Bad", "line\nbreak"), ("X-Bad", "nul\u{0}"), ("Bad Name", "v"),
        ("", "v"), ("X:Colon", "v"),
    ])
    func injectedOrMalformedHeadersBecome500(name: String, value: String) {
        let handler = ClosureHandler { _ in Response(status: 200, headers: [(name, value)], body: .bytes(ByteBuffer())) }
        let response = AppRunner.respond(to: Request(vars: []), with: handler)
        #expect(response.status == 500)
        #expect(response.headers.allSatisfy { $0.name != name })
    }

    @Test(arguments: [0, 99, 1000, -1])
    func impossibleStatusBecomes500(status: Int) {
        let handler = ClosureHandler { _ in Response(status: status, "x") }
        #expect(AppRunner.respond(to: Request(vars: []), with: handler).status == 500)
    }
}

@Suite struct ReasonPhraseTests {
    @Test(arguments: ["Okay-ish", "Custom reason, with spaces", "", "tab\tinside"])
    func aPlainReasonIsKept(reason: String) {
        let handler = ClosureHandler { _ in Response(status: 200, reason: reason, body: .bytes(ByteBuffer())) }
        let response = AppRunner.respond(to: Request(vars: []), with: handler)
        #expect(response.status == 200)
        #expect(response.reason == reason)
    }

    @Test(arguments: ["OK\r\nSet-Cookie: a=1", "line\nbreak", "nul\u{0}", "del\u{7f}"])
    func aReasonWithControlCharactersIsA500(reason: String) {
        let handler = ClosureHandler { _ in Response(status: 200, reason: reason, body: .bytes(ByteBuffer())) }
        let response = AppRunner.respond(to: Request(vars: []), with: handler)
        #expect(response.status == 500)
        #expect(response.reason == nil)
    }
}
