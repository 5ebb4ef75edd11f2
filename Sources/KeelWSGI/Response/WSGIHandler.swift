import CPython
import KeelApp
import NIOCore

/// A loaded WSGI app as a keel-pool handler. Runs on the worker's app threads: each call takes the
/// GIL for the Python work only (environ, the app call, each body chunk) and releases it while the
/// worker writes to the socket, so a `time.sleep` or a slow client in one request stalls no other.
public final class WSGIHandler: Handler, @unchecked Sendable {
    let app: PythonObject
    let support: SupportObjects
    let environ: EnvironBuilder
    let log: @Sendable (String) -> Void

    init(app: PythonObject, support: SupportObjects, configuration: WSGIConfiguration) {
        self.app = app
        self.support = support
        self.environ = EnvironBuilder(
            support: support, multithread: configuration.multithread, multiprocess: configuration.multiprocess)
        self.log = configuration.log
    }

    public func handle(_ request: Request) throws -> Response {
        do {
            return try GIL.with { () throws(AppFailure) -> Response in try call(request) }
        } catch {
            log("error: WSGI app failed on \(request.requestLine): \(error)")
            return Response(status: 500, "Internal Server Error\n")
        }
    }

    private func call(_ request: Request) throws(AppFailure) -> Response {
        guard let made = environ.make(for: request) else { throw raised("cannot build the environ") }
        defer { flush(made.errors) }
        guard let startResponse = PyOwned(PyObject_CallNoArgs(support.startResponseClass.pointer)) else {
            throw raised("cannot make start_response")
        }
        guard let result = PyOwned(keel_py_call2(app.pointer, made.environ.pointer, startResponse.pointer)) else {
            throw raised("the app raised")
        }
        let body = WSGIResult(result: PythonObject(owned: result.take()), support: support)
        let head = HeadReader(support: support, startResponse: startResponse.pointer)
        return try body.response(head: head, requestLine: request.requestLine)
    }

    /// wsgi.errors may hold a line without its newline: it still reaches the log.
    private func flush(_ errors: PythonObject) {
        if let flushed = PyObject_CallMethodNoArgs(errors.pointer, support.names.flush.pointer) {
            Py_DecRef(flushed)
        } else {
            PyErr_Clear()
        }
    }

    /// The pending Python exception as a failure whose text is the traceback.
    func raised(_ what: String) -> AppFailure {
        AppFailure("\(what):\n" + (Py.takeErrorText(formatter: support.formatException.pointer) ?? "(no exception set)"))
    }
}
