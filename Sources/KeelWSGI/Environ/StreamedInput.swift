import CPython
import KeelApp

/// `wsgi.input` over a body still on the connection: a `BufferedReader` whose raw `readinto` fills
/// Python's buffer straight from the socket (GIL released while it waits), never past CONTENT_LENGTH.
enum StreamedInput {
    /// Call with the GIL held.
    static func make(_ reader: any BodyReader, support: SupportObjects) -> PyOwned? {
        guard let hook = PyClosure.make({ target in readInto(target, from: reader) }) else { return nil }
        return PyOwned(keel_py_call1(support.makeInput.pointer, hook.pointer))
    }

    private static func readInto(_ target: PyPointer, from reader: any BodyReader) -> PyPointer? {
        var view = Py_buffer()
        guard PyObject_GetBuffer(target, &view, PyBUF_WRITABLE) == 0 else { return nil }
        defer { PyBuffer_Release(&view) }
        let buffer = UnsafeMutableRawBufferPointer(start: view.buf, count: view.len)
        do {
            let count = try GIL.released { try reader.read(into: buffer) }
            return PyLong_FromSsize_t(count)
        } catch {
            return PyClosure.raise(keel_py_exc_os_error(), "wsgi.input: \(error)")
        }
    }
}
