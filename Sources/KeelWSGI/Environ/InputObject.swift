import CPython
import KeelApp
import NIOCore

/// `wsgi.input` as a type implemented in Swift (`PyType_FromSpec`, so one build serves every CPython): the body's
/// bytes already received wait in a `ByteBuffer`; a streamed body is read from the connection 64 KiB at a time with
/// the GIL released, never past its end. read(), readline(), readlines(), iteration and readinto() follow `io`'s
/// buffered-reader semantics (read(n) waits for n bytes or the end; a negative or None size means all). No Python
/// class and no 64 KiB `BufferedReader` per request.
enum InputObject {
    final class State {
        var pending: ByteBuffer
        let reader: (any BodyReader)?
        var ended: Bool
        /// A read is under way (it may have let the GIL go): a second thread's read is refused, not interleaved.
        var busy = false
        static let readSize = 65536

        init(buffered body: ByteBuffer) {
            pending = body
            reader = nil
            ended = true
        }

        init(streaming reader: any BodyReader) {
            pending = ByteBuffer()
            self.reader = reader
            ended = false
        }

        /// Appends what the connection has next (waiting without the GIL); false once the body has ended.
        func fill() throws -> Bool {
            guard !ended, let reader else { return false }
            // Keeps the buffer at what is unread plus one read: a long upload must not grow it.
            if pending.readableBytes == 0 { pending.clear() } else if pending.readerIndex > 0 { pending.discardReadBytes() }
            let count = try GIL.released {
                try pending.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readSize) { free in
                    try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: free.prefix(Self.readSize)))
                }
            }
            if count == 0 { ended = true }
            return count > 0
        }

        /// The first `count` pending bytes as a new `bytes`.
        func take(_ count: Int) -> PyPointer? {
            let made = pending.withUnsafeReadableBytes { raw in
                PyBytes_FromStringAndSize(raw.baseAddress?.assumingMemoryBound(to: CChar.self), min(count, raw.count))
            }
            if made != nil { pending.moveReaderIndex(forwardBy: min(count, pending.readableBytes)) }
            return made
        }

        func read(_ size: Int) throws -> PyPointer? {
            if size < 0 {
                while try fill() {}
                return take(pending.readableBytes)
            }
            while pending.readableBytes < size, try fill() {}
            return take(size)
        }

        /// At most `size` bytes with at most one wait for the connection (`io`'s read1).
        func read1(_ size: Int) throws -> PyPointer? {
            if pending.readableBytes == 0 && size != 0 { _ = try fill() }
            return take(size < 0 ? pending.readableBytes : size)
        }

        func readline(_ limit: Int) throws -> PyPointer? {
            var searched = 0
            while true {
                let newline = pending.withUnsafeReadableBytes { raw in raw[searched...].firstIndex(of: UInt8(ascii: "\n")) }
                if let newline, limit < 0 || newline < limit { return take(newline + 1) }
                if limit >= 0 && pending.readableBytes >= limit { return take(limit) }
                searched = pending.readableBytes
                guard try fill() else { return take(pending.readableBytes) }
            }
        }
    }

    /// The type, made once per worker. Call with the GIL held.
    nonisolated(unsafe) static let type: SwiftObjectType? = makeType()

    /// A new `wsgi.input` owning `state`. Call with the GIL held.
    static func make(_ state: State) -> PyOwned? { type?.make(state) }

    private static func state(_ object: PyPointer?) -> State? { SwiftObjectType.state(of: object, as: State.self) }

    /// The optional size argument: absent or None is -1 (all); any integer-like (`__index__`) is taken. `read` and
    /// `read1` refuse sizes below -1 as `io` does; `readline` and `readlines` take any negative as "no limit".
    private static func size(
        _ args: UnsafePointer<PyPointer?>?, _ count: Int, _ method: String, negativeMeansAll: Bool = true
    ) -> Int? {
        guard count <= 1 else {
            PyErr_SetString(keel_py_exc_type_error(), "wsgi.input.\(method)() takes at most one argument")
            return nil
        }
        guard count == 1, let argument = args?[0], argument != Py.none else { return -1 }
        let value = PyNumber_AsSsize_t(argument, keel_py_exc_overflow_error())
        if value == -1, PyErr_Occurred() != nil { return nil }
        if value < -1 && !negativeMeansAll {
            PyErr_SetString(keel_py_exc_value_error(), "read length must be non-negative or -1")
            return nil
        }
        return value
    }

    /// Runs a read, one at a time per object, turning a connection failure into `OSError`.
    private static func reading(_ state: State, _ body: () throws -> PyPointer?) -> PyPointer? {
        guard !state.busy else {
            PyErr_SetString(keel_py_exc_runtime_error(), "wsgi.input is being read by another thread")
            return nil
        }
        state.busy = true
        defer { state.busy = false }
        do { return try body() } catch {
            PyErr_SetString(keel_py_exc_os_error(), "wsgi.input: \(error)")
            return nil
        }
    }

    private typealias FastCall = @convention(c) (PyPointer?, UnsafePointer<PyPointer?>?, Py_ssize_t) -> PyPointer?

    private static func makeType() -> SwiftObjectType? {
        let read: FastCall = { object, args, count in
            guard let state = InputObject.state(object), let size = InputObject.size(args, count, "read", negativeMeansAll: false)
            else { return nil }
            return InputObject.reading(state) { try state.read(size) }
        }
        let read1: FastCall = { object, args, count in
            guard let state = InputObject.state(object), let size = InputObject.size(args, count, "read1", negativeMeansAll: false)
            else { return nil }
            return InputObject.reading(state) { try state.read1(size) }
        }
        let readline: FastCall = { object, args, count in
            guard let state = InputObject.state(object), let limit = InputObject.size(args, count, "readline") else {
                return nil
            }
            return InputObject.reading(state) { try state.readline(limit) }
        }
        let readlines: FastCall = { object, args, count in
            guard let state = InputObject.state(object), let hint = InputObject.size(args, count, "readlines"),
                let lines = PyList_New(0)
            else { return nil }
            var total = 0
            while true {
                guard let line = InputObject.reading(state, { try state.readline(-1) }) else {
                    Py_DecRef(lines)
                    return nil
                }
                let length = keel_py_bytes_size(line)
                if length == 0 {
                    Py_DecRef(line)
                    return lines
                }
                let appended = PyList_Append(lines, line)
                Py_DecRef(line)
                guard appended == 0 else {
                    Py_DecRef(lines)
                    return nil
                }
                total += length
                if hint > 0 && total >= hint { return lines }
            }
        }
        let readinto: @convention(c) (PyPointer?, PyPointer?) -> PyPointer? = { object, target in
            guard let state = InputObject.state(object), let target else { return nil }
            var view = Py_buffer()
            guard PyObject_GetBuffer(target, &view, PyBUF_WRITABLE) == 0 else { return nil }
            defer { PyBuffer_Release(&view) }
            return InputObject.reading(state) {
                // As BufferedReader.readinto: fill the buffer unless the body ends first.
                while state.pending.readableBytes < view.len, try state.fill() {}
                let count = min(view.len, state.pending.readableBytes)
                if count > 0 {
                    state.pending.withUnsafeReadableBytes { raw in view.buf?.copyMemory(from: raw.baseAddress!, byteCount: count) }
                }
                state.pending.moveReaderIndex(forwardBy: count)
                return PyLong_FromSsize_t(count)
            }
        }
        let readable: @convention(c) (PyPointer?, PyPointer?) -> PyPointer? = { _, _ in keel_py_new_ref(keel_py_true()) }
        let next: @convention(c) (PyPointer?) -> PyPointer? = { object in
            guard let state = InputObject.state(object), let line = InputObject.reading(state, { try state.readline(-1) })
            else {
                return nil
            }
            if keel_py_bytes_size(line) == 0 {
                Py_DecRef(line)
                return nil  // no exception set: the end of iteration
            }
            return line
        }
        let fast = METH_FASTCALL
        return SwiftObjectType(
            name: "keel_pool.Input",
            methods: [
                ("read", unsafeBitCast(read, to: PyCFunction.self), fast),
                ("read1", unsafeBitCast(read1, to: PyCFunction.self), fast),
                ("readline", unsafeBitCast(readline, to: PyCFunction.self), fast),
                ("readlines", unsafeBitCast(readlines, to: PyCFunction.self), fast),
                ("readinto", readinto, METH_O),
                ("readable", readable, METH_NOARGS),
            ],
            iterate: next)
    }
}
