import KeelApp
import NIOCore
import Testing

@testable import KeelWSGI

#if canImport(Glibc)
import Glibc
#endif

/// The response a WSGI app's `wsgi.file_wrapper` becomes, seen without a socket: the embedded
/// interpreter is started once in this test process.
@Suite("WSGI file_wrapper", .serialized)
struct FileWrapperTests {
    static let source = """
        import io

        def app(environ, start_response):
            start_response('200 OK', [('Content-Type', 'application/octet-stream')])
            query = environ['QUERY_STRING']
            if query.startswith('file='):
                return environ['wsgi.file_wrapper'](open(query[5:], 'rb'))
            return environ['wsgi.file_wrapper'](io.BytesIO(b'x' * 20000), 8192)
        """

    static let directory: String = {
        var template = Array("/tmp/keel-wsgi-unit-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }()

    static let handler: WSGIHandler = {
        let path = directory + "/file_app.py"
        let file = fopen(path, "w")!
        fputs(source, file)
        fclose(file)
        return try! WSGIAppLoader.load(WSGIConfiguration(source: .file(path), callable: "app", log: { _ in }))
    }()

    /// Records what a deferred response sends through its writer.
    final class RecordingWriter: ResponseWriter {
        var status: Int?
        var body: [UInt8] = []
        var writes = 0
        func writeHead(status: Int, reason: String?, headers: [(name: String, value: String)]) throws {
            self.status = status
        }
        func write(_ bytes: ByteBuffer) throws {
            body += bytes.readableBytesView
            writes += 1
        }
    }

    static func run(query: String) throws -> (Response?, RecordingWriter) {
        let request = Request(vars: [("REQUEST_METHOD", "GET"), ("QUERY_STRING", query), ("PATH_INFO", "/")])
        guard case .deferred(let produce) = try handler.handle(request).body else {
            Issue.record("a WSGI response is deferred")
            return (nil, RecordingWriter())
        }
        let writer = RecordingWriter()
        return (try produce(writer), writer)
    }

    @Test func aRegularFileBecomesAFileBody() throws {
        let path = Self.directory + "/payload.bin"
        let file = fopen(path, "w")!
        fputs(String(repeating: "y", count: 12345), file)
        fclose(file)
        let (response, writer) = try Self.run(query: "file=\(path)")
        guard case .file(let sent)? = response?.body else {
            Issue.record("expected a .file body, got \(String(describing: response?.body))")
            return
        }
        #expect(sent.offset == 0)
        #expect(sent.length == 12345)
        #expect(response?.status == 200)
        #expect(writer.status == nil)  // nothing went through the writer: the worker sends the file
    }

    @Test func aBytesIOIsIteratedInBlocks() throws {
        let (response, writer) = try Self.run(query: "")
        #expect(response == nil)
        #expect(writer.status == 200)
        #expect(writer.body.count == 20000)
        #expect(writer.writes == 3)  // 8192 + 8192 + 3616
    }
}
