import Foundation
import NIOCore
import Testing

@testable import KeelApp

/// The bytes of a `.bytes` response body, or nil for a streamed one.
func bodyBytes(_ response: Response) -> [UInt8]? {
    guard case .bytes(let buffer) = response.body else { return nil }
    return Array(buffer.readableBytesView)
}

func bodyString(_ response: Response) -> String? {
    bodyBytes(response).map { String(decoding: $0, as: UTF8.self) }
}

@Suite struct BuiltinAppsTests {
    // MARK: Registry

    @Test func registryListsEveryApp() {
        #expect(BuiltinApps.names == ["hello", "echo", "sleep", "env", "crash", "flaky", "status", "leak", "stream"])
        #expect(BuiltinApps.all.allSatisfy { !$0.summary.isEmpty })
        #expect(BuiltinApps.named("hello") is HelloApp)
        #expect(BuiltinApps.named("echo") is EchoApp)
        #expect(BuiltinApps.named("sleep") is SleepApp)
        #expect(BuiltinApps.named("env") is EnvApp)
        #expect(BuiltinApps.named("crash") is CrashApp)
        #expect(BuiltinApps.named("nope") == nil)
        #expect(BuiltinApps.named("Hello") == nil)
    }

    // MARK: hello

    @Test(
        arguments: [
            [],
            [("REQUEST_METHOD", "POST"), ("PATH_INFO", "/anything"), ("QUERY_STRING", "x=1")],
        ] as [[(name: String, value: String)]])
    func helloSaysHello(vars: [(name: String, value: String)]) throws {
        let response = try HelloApp().handle(Request(vars: vars, body: ByteBuffer(string: "ignored")))
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "text/plain")
        #expect(response.header("content-type") == "text/plain")
        #expect(bodyString(response) == "Hello world!\n")
    }

    // MARK: echo

    @Test(
        arguments: [
            ([("CONTENT_TYPE", "application/json")], "application/json"),
            ([("CONTENT_TYPE", "text/plain; charset=utf-8")], "text/plain; charset=utf-8"),
            ([("CONTENT_TYPE", "")], "application/octet-stream"),
            ([], "application/octet-stream"),
            ([("HTTP_CONTENT_TYPE", "text/html")], "application/octet-stream"),
        ] as [([(name: String, value: String)], String)])
    func echoReturnsTheBodyWithItsContentType(vars: [(name: String, value: String)], contentType: String) throws {
        let body: [UInt8] = (0...255).map { UInt8($0) } + Array("tail ✓".utf8)
        var buffer = ByteBuffer()
        buffer.writeBytes(body)
        let response = try EchoApp().handle(Request(vars: vars, body: buffer))
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == contentType)
        #expect(bodyBytes(response) == body)
    }

    @Test func echoOfAnEmptyBodyIsEmpty() throws {
        let response = try EchoApp().handle(Request(vars: [("CONTENT_LENGTH", "")]))
        #expect(response.status == 200)
        #expect(bodyBytes(response) == [])
    }

    // MARK: sleep

    @Test func sleepSleepsAtLeastTheRequestedTime() throws {
        let clock = ContinuousClock()
        var response: Response?
        let elapsed = try clock.measure {
            response = try SleepApp().handle(Request(vars: [("QUERY_STRING", "ms=30")]))
        }
        #expect(elapsed >= .milliseconds(30))
        #expect(response?.status == 200)
        #expect(bodyString(response!) == "slept 30 ms\n")
    }

    @Test func sleepOfZeroReturnsAtOnce() throws {
        let response = try SleepApp().handle(Request(vars: [("QUERY_STRING", "other=1&ms=0")]))
        #expect(response.status == 200)
        #expect(bodyString(response) == "slept 0 ms\n")
    }

    @Test(arguments: ["ms=abc", "ms=-5", "ms=999999999", "ms=", "ms", "ms=1.5", "ms=600001", "ms=99999999999999999999"])
    func sleepRejectsABadDuration(query: String) {
        let error = #expect(throws: HTTPError.self) {
            try SleepApp().handle(Request(vars: [("QUERY_STRING", query)]))
        }
        #expect(error?.status == 400)
        #expect(error?.message.contains("600000") == true)
    }

    // MARK: env

    static let envVars: [(name: String, value: String)] = [
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", ""),
        ("PATH_INFO", "/caf\u{E9}"),
        ("HTTP_X_QUOTE", "say \"hi\""),
        ("HTTP_X_BACKSLASH", "C:\\path\\to"),
        ("HTTP_X_NEWLINE", "line1\nline2\r\n"),
        ("HTTP_X_TAB", "a\tb"),
        ("HTTP_X_CONTROL", "ctl\u{01}x"),
        ("HTTP_X_ALL_CONTROLS", String(String.UnicodeScalarView((0..<0x20).compactMap { Unicode.Scalar($0) }))),
        ("HTTP_X_DEL", "\u{7F}"),
        ("HTTP_X_UNICODE", "日本 👩‍👩‍👧 \u{2028}"),
        ("HTTP_X_SLASH", "</script>"),
        ("key \"with\" \\ odd\nchars", "v"),
        ("", "empty name"),
    ]

    @Test func envReturnsTheVarsAsJSON() throws {
        let response = try EnvApp().handle(Request(vars: Self.envVars))
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/json")
        let bytes = try #require(bodyBytes(response))
        let object = try JSONSerialization.jsonObject(with: Data(bytes))
        let dictionary = try #require(object as? [String: String])
        #expect(dictionary.count == Self.envVars.count)
        for v in Self.envVars {
            #expect(dictionary[v.name] == v.value, "var \(v.name.debugDescription)")
        }
    }

    @Test func envKeepsVarOrder() throws {
        let vars: [(name: String, value: String)] = [("ZZZ", "1"), ("AAA", "2"), ("MMM", "3")]
        let text = try #require(bodyString(try EnvApp().handle(Request(vars: vars))))
        let positions = vars.compactMap { text.range(of: "\"\($0.name)\"")?.lowerBound }
        #expect(positions.count == 3)
        #expect(positions == positions.sorted())
    }

    @Test func envOfNoVarsIsAnEmptyObject() throws {
        let response = try EnvApp().handle(Request(vars: []))
        let object = try JSONSerialization.jsonObject(with: Data(try #require(bodyBytes(response))))
        #expect((object as? [String: Any])?.isEmpty == true)
    }

    @Test(arguments: Array(0..<0x20) + [0x22, 0x5C])
    func jsonQuoteEscapesEveryCharacterJSONRequires(code: UInt32) throws {
        let scalar = try #require(Unicode.Scalar(code))
        let quoted = JSON.quote(String(Character(scalar)))
        #expect(quoted.unicodeScalars.allSatisfy { $0.value >= 0x20 })
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(decoded?.first?.unicodeScalars.map(\.value) == [code])
    }

    // MARK: Response and HTTPError

    @Test func textResponseSetsItsContentType() {
        let response = Response(status: 404, contentType: "text/html", "<p>gone</p>")
        #expect(response.status == 404)
        #expect(response.headers.count == 1)
        #expect(response.header("CONTENT-TYPE") == "text/html")
        #expect(response.header("X-Missing") == nil)
        #expect(bodyString(response) == "<p>gone</p>")
        #expect(Response("x").header("Content-Type") == "text/plain")
        #expect(Response("x").status == 200)
    }

    @Test func httpErrorDescription() {
        #expect(HTTPError(400, "bad ms").description == "400: bad ms")
    }
}

@Suite("status app")
struct StatusAppTests {
    @Test(arguments: [("/404", 404), ("/200", 200), ("/503", 503), ("/204", 204)])
    func answersThePathStatus(path: String, status: Int) throws {
        let response = try StatusApp().handle(Request(vars: [("PATH_INFO", path)]))
        #expect(response.status == status)
        if case .bytes(let body) = response.body {
            #expect(body.readableBytes == (status == 204 ? 0 : "status \(status)\n".utf8.count))
        } else {
            Issue.record("status answers with bytes")
        }
    }

    @Test(arguments: ["/", "/abc", "/99", "/600", "/4040", "/404/x"])
    func rejectsAnythingElseWith400(path: String) {
        #expect(throws: HTTPError.self) { try StatusApp().handle(Request(vars: [("PATH_INFO", path)])) }
    }
}
