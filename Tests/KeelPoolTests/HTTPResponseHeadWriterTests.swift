import NIOCore
import Testing

@testable import KeelPool

@Suite struct HTTPResponseHeadWriterTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var status: Int
        var headers: [(name: String, value: String)]
        var contentLength: Int?
        var chunked: Bool
        var bytes: String

        var testDescription: String { "\(status) length \(contentLength.map(String.init) ?? "nil") chunked \(chunked)" }
    }

    static let cases: [Case] = [
        Case(
            status: 200, headers: [("Content-Type", "text/plain")], contentLength: 5, chunked: false,
            bytes: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"),
        Case(
            status: 404, headers: [("Content-Type", "text/plain")], contentLength: 10, chunked: false,
            bytes: "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n"),
        Case(
            status: 200, headers: [("Content-Type", "text/event-stream")], contentLength: nil, chunked: true,
            bytes: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Case(
            status: 200, headers: [], contentLength: nil, chunked: false,
            bytes: "HTTP/1.1 200 OK\r\n\r\n"),
        // A known length wins over chunking.
        Case(
            status: 200, headers: [], contentLength: 3, chunked: true,
            bytes: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"),
        Case(
            status: 204, headers: [], contentLength: nil, chunked: false,
            bytes: "HTTP/1.1 204 No Content\r\n\r\n"),
        Case(
            status: 500, headers: [], contentLength: 0, chunked: false,
            bytes: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
        Case(
            status: 302, headers: [("Location", "/next"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            contentLength: 0, chunked: false,
            bytes: "HTTP/1.1 302 Found\r\nLocation: /next\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                + "Content-Length: 0\r\n\r\n"),
    ]

    @Test(arguments: cases)
    func writesTheExactHead(testCase: Case) {
        var buffer = ByteBuffer()
        HTTPResponseHeadWriter.write(
            status: testCase.status, headers: testCase.headers, contentLength: testCase.contentLength,
            chunked: testCase.chunked, into: &buffer)
        #expect(String(buffer: buffer) == testCase.bytes)
    }

    @Test func appendsToWhatIsAlreadyInTheBuffer() {
        var buffer = ByteBuffer(string: "before|")
        HTTPResponseHeadWriter.write(status: 200, headers: [], contentLength: 0, chunked: false, into: &buffer)
        #expect(String(buffer: buffer) == "before|HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func unknownStatusHasAnEmptyReasonPhrase() {
        var buffer = ByteBuffer()
        HTTPResponseHeadWriter.write(status: 599, headers: [], contentLength: nil, chunked: false, into: &buffer)
        #expect(String(buffer: buffer) == "HTTP/1.1 599 \r\n\r\n")
    }

    @Test func theAppsReasonPhraseIsWrittenAsGiven() {
        var buffer = ByteBuffer()
        HTTPResponseHeadWriter.write(
            status: 200, reason: "Okay-ish", headers: [], contentLength: 0, chunked: false, into: &buffer)
        #expect(String(buffer: buffer) == "HTTP/1.1 200 Okay-ish\r\nContent-Length: 0\r\n\r\n")
    }
}
