import CPython
import KeelApp
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A loaded WSGI app as a keel-pool handler. Runs on the worker's app threads: each call holds the
/// GIL for the Python work only and releases it whenever it waits on the connection (sending a
/// write() or a chunk, reading wsgi.input), so a `time.sleep` or a slow client stalls no other request.
public final class WSGIHandler: Handler, @unchecked Sendable {
    let app: PythonObject
    let support: SupportObjects
    let environ: EnvironBuilder

    init(app: PythonObject, support: SupportObjects, configuration: WSGIConfiguration) {
        self.app = app
        self.support = support
        self.environ = EnvironBuilder(
            support: support, multithread: configuration.multithread, multiprocess: configuration.multiprocess)
    }

    /// wsgi.input reads the connection where the worker offers it (uwsgi sockets).
    public var streamsRequestBody: Bool { true }

    /// The signal `arm_stack_dump` gave faulthandler: no worker thread blocks it, and raising it on the main thread
    /// runs the dump there at once, without the GIL (CPython exports its dumper itself only in some versions).
    static let stackDumpSignal = __libc_current_sigrtmin() + 4

    public func reportStuckThreads() {
        raise(Self.stackDumpSignal)
    }

    /// The head is only known once the app writes or yields its first bytes: the app runs inside the
    /// response, which sends as it goes (a failure before the head is a 500, after it a cut connection).
    public func handle(_ request: Request) throws -> Response {
        Response(body: .deferred { writer in try self.run(request, writer: writer) })
    }

    func run(_ request: Request, writer: any ResponseWriter) throws -> Response? {
        let exchange = WSGIExchange(writer: writer, support: support)
        return try GIL.with { () throws(AppFailure) -> Response? in
            defer { exchange.finish() }
            return try call(request, exchange: exchange)
        }
    }

    private func call(_ request: Request, exchange: WSGIExchange) throws(AppFailure) -> Response? {
        guard let environ = environ.make(for: request) else { throw raised("cannot build the environ") }
        defer { ErrorsObject.flush(support.errors.pointer) }
        guard let startResponse = StartResponse.make(for: exchange) else { throw raised("cannot make start_response") }
        guard let result = PyOwned(keel_py_call2(app.pointer, environ.pointer, startResponse.pointer)) else {
            throw raised("the app raised")
        }
        let body = WSGIResult(
            result: PythonObject(owned: result.take()), support: support, requestLine: request.requestLine)
        return try body.deliver(exchange)
    }

    /// The pending Python exception as a failure whose text is the traceback.
    func raised(_ what: String) -> AppFailure {
        AppFailure("\(what):\n" + (Py.takeErrorText(formatter: support.formatException.pointer) ?? "(no exception set)"))
    }
}
