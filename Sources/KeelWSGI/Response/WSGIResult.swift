import CPython
import KeelApp
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The iterable a WSGI app returned, delivered: before any write(), a list or tuple of bytes becomes
/// one body with Content-Length and a `wsgi.file_wrapper` over a regular file becomes a sendfile
/// response; anything else is iterated, the head going out with the first non-empty chunk (PEP 3333)
/// and each chunk sent as it comes. Its `close()` is called exactly once in every case: end, error,
/// client gone, or the response dropped unsent.
final class WSGIResult: @unchecked Sendable {
    private let result: PythonObject
    private let support: SupportObjects
    private let requestLine: String
    private var closed = false

    init(result: PythonObject, support: SupportObjects, requestLine: String) {
        self.result = result
        self.support = support
        self.requestLine = requestLine
    }

    deinit {
        if !closed { GIL.with { close() } }
    }

    /// Sends the body through `exchange`, or returns the response to send instead. Call with the GIL held.
    func deliver(_ exchange: WSGIExchange) throws(AppFailure) -> Response? {
        do {
            if !exchange.headSent, let whole = try wholeResponse(exchange) { return whole }
            try stream(exchange)
            close()
            return nil
        } catch {
            close()
            throw error
        }
    }

    /// A response known at once (a list, a tuple, bytes, a sendable file), or nil to iterate.
    private func wholeResponse(_ exchange: WSGIExchange) throws(AppFailure) -> Response? {
        let object = result.pointer
        let isList = keel_py_list_check_exact(object) != 0
        if isList || keel_py_tuple_check_exact(object) != 0 || keel_py_bytes_check(object) != 0 {
            var body = ByteBuffer()
            if keel_py_bytes_check(object) != 0 {
                // Not an iterable of bytes, but unambiguous: uWSGI sends it as the body, and so do we.
                Self.append(object, to: &body)
            } else {
                let count = isList ? keel_py_list_size(object) : keel_py_tuple_size(object)
                for index in 0..<count {
                    let item = isList ? keel_py_list_item(object, index)! : keel_py_tuple_item(object, index)!
                    try Self.checkBytes(item)
                    Self.append(item, to: &body)
                }
            }
            let head = try exchange.readHead()
            close()
            return Response(status: head.status, reason: head.reason, headers: head.headers, body: .bytes(body))
        }
        if keel_py_unicode_check(object) != 0 {
            throw AppFailure("the app returned a str; a WSGI app returns an iterable of bytes (e.g. [text.encode()])")
        }
        guard let file = sendableFile() else { return nil }
        let head = try exchange.readHead()
        return Response(status: head.status, reason: head.reason, headers: head.headers, body: .file(file))
    }

    /// The wrapped file of a `wsgi.file_wrapper` result as an fd of its own, if it is a regular file;
    /// the iterable's close() runs once the file is sent (or dropped).
    private func sendableFile() -> ResponseFile? {
        // Exactly our wrapper: a subclass or a middleware's wrapper may iterate differently.
        guard keel_py_type_is(result.pointer, support.fileWrapperClass.pointer) != 0,
            let region = PyOwned(PyObject_CallMethodNoArgs(result.pointer, support.names.sendable.pointer))
        else {
            PyErr_Clear()
            return nil
        }
        guard keel_py_tuple_check(region.pointer) != 0, keel_py_tuple_size(region.pointer) == 3 else { return nil }
        let fd = Int32(truncatingIfNeeded: PyLong_AsLong(keel_py_tuple_item(region.pointer, 0)))
        let offset = PyLong_AsLong(keel_py_tuple_item(region.pointer, 1))
        let length = PyLong_AsLong(keel_py_tuple_item(region.pointer, 2))
        if PyErr_Occurred() != nil {
            PyErr_Clear()
            return nil
        }
        let copy = dup(fd)
        guard copy >= 0 else { return nil }
        return ResponseFile(descriptor: copy, offset: offset, length: length) { [self] in GIL.with { close() } }
    }

    /// Iterates the result, sending the head with the first non-empty chunk (or at the end, with an
    /// empty body) and each chunk before asking for the next.
    private func stream(_ exchange: WSGIExchange) throws(AppFailure) {
        guard let iterator = PyOwned(PyObject_GetIter(result.pointer)) else {
            PyErr_Clear()
            throw AppFailure(
                "the app returned a \(String(cString: keel_py_type_name(result.pointer))), which is not iterable")
        }
        while true {
            guard let item = PyOwned(PyIter_Next(iterator.pointer)) else {
                if PyErr_Occurred() != nil { throw raised("the app's response iterable raised") }
                break
            }
            try Self.checkBytes(item.pointer)
            if keel_py_bytes_size(item.pointer) == 0 { continue }
            try exchange.sendHead()
            try exchange.send(item.pointer)
        }
        try exchange.sendHead()
    }

    /// Calls the iterable's close() once; an exception from it is logged, not raised. GIL held.
    private func close() {
        guard !closed else { return }
        closed = true
        guard PyObject_HasAttr(result.pointer, support.names.close.pointer) != 0 else { return }
        if let returned = PyObject_CallMethodNoArgs(result.pointer, support.names.close.pointer) {
            Py_DecRef(returned)
        } else if let text = Py.takeErrorText(formatter: support.formatException.pointer) {
            ErrorLog.sink?("error: close() of the response of \(requestLine) raised:\n\(text)")
        }
    }

    private func raised(_ what: String) -> AppFailure {
        AppFailure("\(what):\n" + (Py.takeErrorText(formatter: support.formatException.pointer) ?? "(no exception set)"))
    }

    private static func checkBytes(_ item: PyPointer) throws(AppFailure) {
        guard keel_py_bytes_check(item) == 0 else { return }
        throw AppFailure(
            "the response body holds a \(String(cString: keel_py_type_name(item))), not bytes; "
                + "a WSGI body is made of bytes (encode text, e.g. text.encode('utf-8'))")
    }

    private static func append(_ bytes: PyPointer, to buffer: inout ByteBuffer) {
        let count = keel_py_bytes_size(bytes)
        guard count > 0 else { return }
        buffer.writeBytes(UnsafeRawBufferPointer(start: keel_py_bytes_data(bytes), count: count))
    }
}
