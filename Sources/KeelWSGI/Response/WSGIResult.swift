import CPython
import KeelApp
import NIOCore

/// The iterable a WSGI app returned, turned into a keel-pool response: a list or tuple of bytes is
/// sent whole with Content-Length; anything else is iterated up to its first non-empty chunk (headers
/// are not sent before it, as PEP 3333 asks), then streamed chunk by chunk. Its `close()` is called
/// exactly once in every case: end, error, client gone, or the response dropped unsent.
final class WSGIResult: @unchecked Sendable {
    private let result: PythonObject
    private let support: SupportObjects
    private var iterator: PythonObject?
    private var closed = false
    private var requestLine = ""

    init(result: PythonObject, support: SupportObjects) {
        self.result = result
        self.support = support
    }

    deinit {
        if !closed { GIL.with { close() } }
    }

    /// Call with the GIL held.
    func response(head reader: HeadReader, requestLine: String) throws(AppFailure) -> Response {
        self.requestLine = requestLine
        do {
            return try makeResponse(reader)
        } catch {
            close()
            throw error
        }
    }

    private func makeResponse(_ reader: HeadReader) throws(AppFailure) -> Response {
        let object = result.pointer
        var body = ByteBuffer()
        for chunk in try reader.written() { Self.append(chunk, to: &body) }
        if keel_py_list_check_exact(object) != 0 || keel_py_tuple_check_exact(object) != 0 {
            let isList = keel_py_list_check_exact(object) != 0
            let count = isList ? keel_py_list_size(object) : keel_py_tuple_size(object)
            for index in 0..<count {
                let item = isList ? keel_py_list_item(object, index)! : keel_py_tuple_item(object, index)!
                try Self.checkBytes(item)
                Self.append(item, to: &body)
            }
            let head = try reader.read()
            close()
            return Response(status: head.status, headers: head.headers, body: .bytes(body))
        }
        if keel_py_bytes_check(object) != 0 {
            // Not an iterable of bytes, but unambiguous: uWSGI sends it as the body, and so do we.
            Self.append(object, to: &body)
            let head = try reader.read()
            close()
            return Response(status: head.status, headers: head.headers, body: .bytes(body))
        }
        if keel_py_unicode_check(object) != 0 {
            throw AppFailure(
                "the app returned a str; a WSGI app returns an iterable of bytes (e.g. [text.encode()])")
        }
        guard let iterator = PyObject_GetIter(object) else {
            PyErr_Clear()
            throw AppFailure("the app returned a \(String(cString: keel_py_type_name(object))), which is not iterable")
        }
        self.iterator = PythonObject(owned: iterator)
        // Headers wait for the first non-empty chunk (the app may still call start_response with exc_info).
        while let chunk = try next() {
            if keel_py_bytes_size(chunk.pointer) == 0 { continue }
            Self.append(chunk.pointer, to: &body)
            let head = try reader.read()
            reader.commit()
            let first = body
            return Response(status: head.status, headers: head.headers, body: .stream { writer in
                try self.send(first: first, to: writer)
            })
        }
        let head = try reader.read()
        close()
        return Response(status: head.status, headers: head.headers, body: .bytes(body))
    }

    /// The next chunk (checked to be bytes), nil at the end. Call with the GIL held.
    private func next() throws(AppFailure) -> PyOwned? {
        guard let iterator else { return nil }
        guard let item = PyOwned(PyIter_Next(iterator.pointer)) else {
            if PyErr_Occurred() != nil { throw raised("the app's response iterable raised") }
            return nil
        }
        try Self.checkBytes(item.pointer)
        return item
    }

    /// Streams the rest: Python runs (with the GIL) only to produce each chunk, the write waits without it.
    private func send(first: ByteBuffer, to writer: any BodyWriter) throws {
        defer { GIL.with { close() } }
        try writer.write(first)
        while true {
            let chunk = try GIL.with { () throws(AppFailure) -> ByteBuffer? in
                guard let item = try next() else { return nil }
                var buffer = ByteBuffer()
                Self.append(item.pointer, to: &buffer)
                return buffer
            }
            guard let chunk else { return }
            if chunk.readableBytes > 0 { try writer.write(chunk) }
        }
    }

    /// Calls the iterable's close() once; an exception from it is logged, not raised. GIL held.
    private func close() {
        guard !closed else { return }
        closed = true
        iterator = nil
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
