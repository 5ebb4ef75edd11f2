import CPython

/// `wsgi.errors` as a type made in Swift: one instance per worker (uWSGI and gunicorn hand every request the same
/// stream). Text goes to the pool's log a line at a time; a partial line waits for its newline or for the end of
/// the request (`flush`, called from Swift). Only touched with the GIL held, which also guards the pending text.
enum ErrorsObject {
    final class State {
        var pending = ""

        func write(_ text: String) {
            pending += text
            // By byte, not Character: "\r\n" is one Character and would never match "\n".
            while let newline = pending.utf8.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Substring(pending.utf8[..<newline])
                if line.utf8.last == UInt8(ascii: "\r") { line = Substring(line.utf8.dropLast()) }
                ErrorLog.sink?(String(line))
                pending = String(pending.utf8[pending.utf8.index(after: newline)...])!
            }
        }

        func flush() {
            guard !pending.isEmpty else { return }
            ErrorLog.sink?(pending)
            pending = ""
        }
    }

    nonisolated(unsafe) private static let type: SwiftObjectType? = {
        let write: @convention(c) (PyPointer?, PyPointer?) -> PyPointer? = { object, text in
            guard let state = ErrorsObject.state(object), let text, let written = ErrorsObject.write(text, to: state) else {
                return nil
            }
            return PyLong_FromSsize_t(written)
        }
        let writelines: @convention(c) (PyPointer?, PyPointer?) -> PyPointer? = { object, lines in
            guard let state = ErrorsObject.state(object), let lines, let iterator = PyObject_GetIter(lines) else {
                return nil
            }
            defer { Py_DecRef(iterator) }
            while let line = PyIter_Next(iterator) {
                defer { Py_DecRef(line) }
                guard ErrorsObject.write(line, to: state) != nil else { return nil }
            }
            return PyErr_Occurred() == nil ? keel_py_new_ref(Py.none) : nil
        }
        let flush: @convention(c) (PyPointer?, PyPointer?) -> PyPointer? = { object, _ in
            guard let state = ErrorsObject.state(object) else { return nil }
            state.flush()
            return keel_py_new_ref(Py.none)
        }
        return SwiftObjectType(
            name: "keel_pool.Errors",
            methods: [("write", write, METH_O), ("writelines", writelines, METH_O), ("flush", flush, METH_NOARGS)])
    }()

    /// The worker's one `wsgi.errors`.
    static func make() -> PyOwned? { type?.make(State()) }

    /// Logs what is left of the request's last line.
    static func flush(_ object: PyPointer) {
        guard let state = SwiftObjectType.state(of: object, as: State.self) else { return PyErr_Clear() }
        state.flush()
    }

    private static func state(_ object: PyPointer?) -> State? { SwiftObjectType.state(of: object, as: State.self) }

    /// PEP 3333: `str` only. Returns the length written, or nil with `TypeError` set.
    private static func write(_ text: PyPointer, to state: State) -> Int? {
        guard keel_py_unicode_check(text) != 0 else {
            PyErr_SetString(keel_py_exc_type_error(), "wsgi.errors.write() takes str, not \(String(cString: keel_py_type_name(text)))")
            return nil
        }
        // backslashreplace: a lone surrogate is logged escaped instead of failing the app's write.
        guard let encoded = PyOwned(PyUnicode_AsEncodedString(text, "utf-8", "backslashreplace")) else { return nil }
        state.write(
            String(
                decoding: UnsafeRawBufferPointer(
                    start: keel_py_bytes_data(encoded.pointer), count: keel_py_bytes_size(encoded.pointer)),
                as: UTF8.self))
        return PyUnicode_GetLength(text)
    }
}
