import CPython
import KeelApp
import NIOCore

/// `_keel_async`: the builtins the driver (`AsyncDriverModule`) calls on the app's loop thread, holding the GIL.
/// Each request reaches Python as a capsule over its `AsyncExchange`; `take()` turns the inbox into Python events.
enum AsyncBridge {
    /// The worker's one async app (a process serves one app).
    nonisolated(unsafe) static var app: AsyncPythonApp?
    /// The driver's ClientDisconnected, raised by send() once the client has gone.
    nonisolated(unsafe) static var disconnectedError: PyPointer?

    typealias NoArgs = @convention(c) (PyPointer?, PyPointer?) -> PyPointer?
    typealias FastCall = @convention(c) (PyPointer?, UnsafePointer<PyPointer?>?, Py_ssize_t) -> PyPointer?

    /// Registers the module in sys.modules (the driver imports it by name).
    static func install() -> Bool {
        let take: NoArgs = { _, _ in AsyncBridge.take() }
        let body: NoArgs = { _, capsule in
            guard let exchange = AsyncBridge.exchange(capsule) else { return nil }
            return AsyncBridge.body(exchange)
        }
        let send: FastCall = { _, args, count in AsyncBridge.send(args, count) }
        let blocked: NoArgs = { _, capsule in
            guard let exchange = AsyncBridge.exchange(capsule) else { return nil }
            return keel_py_new_ref(exchange.isBlocked ? keel_py_true() : keel_py_false())
        }
        let fail: NoArgs = { _, capsule in
            guard let exchange = AsyncBridge.exchange(capsule) else { return nil }
            exchange.connection.fail(for: exchange)
            return keel_py_new_ref(Py.none)
        }
        let dumped: NoArgs = { _, _ in
            AsyncBridge.app?.stacksDumped()
            return keel_py_new_ref(Py.none)
        }
        let started: NoArgs = { _, outcome in
            AsyncBridge.app?.started(outcome)
            return keel_py_new_ref(Py.none)
        }
        let log: NoArgs = { _, text in
            if let text, let line = Py.text(text) { ErrorLog.sink?(line) }
            return keel_py_new_ref(Py.none)
        }
        let setError: NoArgs = { _, error in
            if let error { AsyncBridge.disconnectedError = keel_py_new_ref(error) }
            return keel_py_new_ref(Py.none)
        }
        let wsReceive: NoArgs = { _, capsule in
            guard let exchange = AsyncBridge.exchange(capsule) else { return nil }
            return AsyncBridge.webSocketReceive(exchange)
        }
        let wsAccept: FastCall = { _, args, count in AsyncBridge.webSocketAccept(args, count) }
        let wsSend: FastCall = { _, args, count in AsyncBridge.webSocketSend(args, count) }
        let wsEnd: FastCall = { _, args, count in
            guard let args, count == 2, let exchange = AsyncBridge.exchange(args[0]), let failed = args[1] else { return nil }
            exchange.connection.endWebSocket(failed: keel_py_is_true(failed) == 1, for: exchange)
            return keel_py_new_ref(Py.none)
        }
        let methods = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 14)
        func method(_ name: String, _ function: PyCFunction, _ flags: Int32) -> PyMethodDef {
            PyMethodDef(ml_name: UnsafePointer(strdup(name)), ml_meth: function, ml_flags: flags, ml_doc: nil)
        }
        methods[0] = method("take", take, METH_NOARGS)
        methods[1] = method("body", body, METH_O)
        methods[2] = method("send", unsafeBitCast(send, to: PyCFunction.self), METH_FASTCALL)
        methods[3] = method("blocked", blocked, METH_O)
        methods[4] = method("fail", fail, METH_O)
        methods[5] = method("started", started, METH_O)
        methods[6] = method("log", log, METH_O)
        methods[7] = method("set_disconnected_error", setError, METH_O)
        methods[8] = method("ws_receive", wsReceive, METH_O)
        methods[9] = method("ws_accept", unsafeBitCast(wsAccept, to: PyCFunction.self), METH_FASTCALL)
        methods[10] = method("ws_send", unsafeBitCast(wsSend, to: PyCFunction.self), METH_FASTCALL)
        methods[11] = method("ws_end", unsafeBitCast(wsEnd, to: PyCFunction.self), METH_FASTCALL)
        methods[12] = method("stacks_dumped", dumped, METH_NOARGS)
        methods[13] = PyMethodDef(ml_name: nil, ml_meth: nil, ml_flags: 0, ml_doc: nil)
        let definition = UnsafeMutablePointer<PyModuleDef>.allocate(capacity: 1)
        guard let module = PyOwned(keel_py_module_create(definition, strdup("_keel_async"), methods)) else { return false }
        return PyDict_SetItemString(PyImport_GetModuleDict(), "_keel_async", module.pointer) == 0
    }

    private static func exchange(_ capsule: PyPointer?) -> AsyncExchange? {
        guard let exchange = SwiftCapsule.object(of: capsule, as: AsyncExchange.self) else {
            if PyErr_Occurred() == nil { PyErr_SetString(keel_py_exc_type_error(), "not a keel request") }
            return nil
        }
        return exchange
    }

    /// `take()`: [(START, id, capsule, scope-or-environ, has_body) | (kind, id) | (STOP, 0)].
    private static func take() -> PyPointer? {
        guard let app, let list = PyOwned(PyList_New(0)) else { return nil }
        for item in app.inbox.take() {
            let tuple: PyPointer?
            switch item {
            case .stop:
                tuple = makeTuple([PyLong_FromLong(4), PyLong_FromLong(0)])
            case .dumpStacks:
                tuple = makeTuple([PyLong_FromLong(5), PyLong_FromLong(0)])
            case .event(let exchange, .start):
                guard let capsule = SwiftCapsule.make(retaining: exchange), let request = app.requestObject(exchange)
                else {
                    let text = Py.takeErrorText(formatter: nil) ?? "unknown error"
                    ErrorLog.sink?("cannot hand \(exchange.request.requestLine) to the app: \(text)")
                    exchange.connection.fail(for: exchange)
                    continue
                }
                tuple = makeTuple([
                    PyLong_FromLong(0), PyLong_FromLong(exchange.id), capsule.take(), request.take(),
                    keel_py_new_ref(exchange.bodyExpected ? keel_py_true() : keel_py_false()),
                ])
            case .event(let exchange, let event):
                tuple = makeTuple([PyLong_FromLong(event.rawValue), PyLong_FromLong(exchange.id)])
            }
            guard let tuple = PyOwned(tuple), PyList_Append(list.pointer, tuple.pointer) == 0 else { return nil }
        }
        return list.take()
    }

    /// A tuple that takes over `items` (new references; nil ones mean a failed call, and the tuple fails too).
    private static func makeTuple(_ items: [PyPointer?]) -> PyPointer? {
        guard let tuple = PyTuple_New(items.count) else {
            items.forEach { $0.map(Py_DecRef) }
            return nil
        }
        var complete = true
        for (index, item) in items.enumerated() {
            if let item { PyTuple_SetItem(tuple, index, item) } else { complete = false }
        }
        guard complete else {
            Py_DecRef(tuple)
            return nil
        }
        return tuple
    }

    /// `body(capsule)`: (bytes, more_body), None (wait for an event) or False (the client has gone).
    private static func body(_ exchange: AsyncExchange) -> PyPointer? {
        switch exchange.readBody() {
        case .wait:
            return keel_py_new_ref(Py.none)
        case .disconnected:
            return keel_py_new_ref(keel_py_false())
        case .bytes(let buffer, let more):
            guard let tuple = PyOwned(PyTuple_New(2)) else { return nil }
            let bytes = buffer.withUnsafeReadableBytes { raw in
                PyBytes_FromStringAndSize(raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
            }
            guard let bytes else { return nil }
            PyTuple_SetItem(tuple.pointer, 0, bytes)
            PyTuple_SetItem(tuple.pointer, 1, keel_py_new_ref(more ? keel_py_true() : keel_py_false()))
            return tuple.take()
        }
    }

    /// `send(capsule, status | None, headers | None, body: bytes, more: bool[, status_line: str])`: True when the
    /// app should wait (writable) before sending more; raises ClientDisconnected once the client has gone.
    private static func send(_ args: UnsafePointer<PyPointer?>?, _ count: Py_ssize_t) -> PyPointer? {
        guard let args, count >= 5, let exchange = exchange(args[0]), let statusObject = args[1],
            let headersObject = args[2], let bodyObject = args[3], let moreObject = args[4]
        else {
            if PyErr_Occurred() == nil { PyErr_SetString(keel_py_exc_type_error(), "send() takes 5 or 6 arguments") }
            return nil
        }
        var head: AsyncResponseHead?
        if statusObject != Py.none {
            let status = PyLong_AsLong(statusObject)
            if status == -1, PyErr_Occurred() != nil { return nil }
            guard (100...999).contains(status) else {
                PyErr_SetString(keel_py_exc_value_error(), "ASGI: status \(status) is not an HTTP status code")
                return nil
            }
            guard let headers = readHeaders(headersObject) else { return nil }
            var reason: String?
            if count >= 6, let line = args[5], let text = Py.text(line) { reason = String(text.dropFirst(4)) }
            head = AsyncResponseHead(status: status, reason: reason, headers: headers)
        }
        guard keel_py_bytes_check(bodyObject) != 0 else {
            PyErr_SetString(keel_py_exc_type_error(), "the response body must be bytes")
            return nil
        }
        let size = keel_py_bytes_size(bodyObject)
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeBytes(UnsafeRawBufferPointer(start: keel_py_bytes_data(bodyObject), count: size))
        switch exchange.send(head: head, body: buffer, more: keel_py_is_true(moreObject) == 1) {
        case .sent:
            return keel_py_new_ref(keel_py_false())
        case .wait:
            return keel_py_new_ref(keel_py_true())
        case .disconnected:
            PyErr_SetString(disconnectedError ?? keel_py_exc_os_error(), "the client closed the connection")
            return nil
        }
    }

    // MARK: WebSockets

    /// `ws_receive(capsule)`: None (wait), (0, str), (1, bytes) or (2, code, reason) once closed.
    private static func webSocketReceive(_ exchange: AsyncExchange) -> PyPointer? {
        switch exchange.readWebSocket() {
        case .wait:
            return keel_py_new_ref(Py.none)
        case .message(.text(let text)):
            return makeTuple([PyLong_FromLong(0), Py.string(text)?.take()])
        case .message(.binary(let bytes)):
            let object = bytes.withUnsafeReadableBytes { raw in
                PyBytes_FromStringAndSize(raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
            }
            return makeTuple([PyLong_FromLong(1), object])
        case .message(.closed(let code, let reason)):
            return makeTuple([PyLong_FromLong(2), PyLong_FromLong(code), Py.string(reason)?.take()])
        }
    }

    /// `ws_accept(capsule, subprotocol | None, headers)`.
    private static func webSocketAccept(_ args: UnsafePointer<PyPointer?>?, _ count: Py_ssize_t) -> PyPointer? {
        guard let args, count == 3, let exchange = exchange(args[0]), let subprotocol = args[1], let headers = args[2]
        else {
            if PyErr_Occurred() == nil { PyErr_SetString(keel_py_exc_type_error(), "ws_accept() takes 3 arguments") }
            return nil
        }
        var chosen: String?
        if subprotocol != Py.none {
            guard let text = Py.text(subprotocol) else {
                PyErr_SetString(keel_py_exc_type_error(), "ASGI: 'subprotocol' must be a str or None")
                return nil
            }
            chosen = text
        }
        guard let fields = headers == Py.none ? [] : readHeaders(headers) else { return nil }
        exchange.connection.acceptWebSocket(subprotocol: chosen, headers: fields, for: exchange)
        return keel_py_new_ref(Py.none)
    }

    /// `ws_send(capsule, str | bytes)` a message, or `ws_send(capsule, code, reason)` the app's close: True when the
    /// app should wait (writable); raises ClientDisconnected once the socket is closed.
    private static func webSocketSend(_ args: UnsafePointer<PyPointer?>?, _ count: Py_ssize_t) -> PyPointer? {
        guard let args, count >= 2, let exchange = exchange(args[0]), let data = args[1] else {
            if PyErr_Occurred() == nil { PyErr_SetString(keel_py_exc_type_error(), "ws_send() takes 2 or 3 arguments") }
            return nil
        }
        let message: WebSocketOutbound
        if count == 3 {
            let code = PyLong_AsLong(data)
            if code == -1, PyErr_Occurred() != nil { return nil }
            let reason = args[2].flatMap { $0 == Py.none ? "" : Py.text($0) } ?? ""
            message = .close(code: code, reason: reason)
        } else if keel_py_bytes_check(data) != 0 {
            var buffer = ByteBufferAllocator().buffer(capacity: keel_py_bytes_size(data))
            buffer.writeBytes(UnsafeRawBufferPointer(start: keel_py_bytes_data(data), count: keel_py_bytes_size(data)))
            message = .binary(buffer)
        } else if let text = Py.text(data) {
            message = .text(ByteBuffer(string: text))
        } else {
            PyErr_SetString(keel_py_exc_type_error(), "ASGI: websocket.send needs 'bytes' or 'text'")
            return nil
        }
        switch exchange.sendWebSocket(message) {
        case .sent: return keel_py_new_ref(keel_py_false())
        case .wait: return keel_py_new_ref(keel_py_true())
        case .disconnected:
            PyErr_SetString(disconnectedError ?? keel_py_exc_os_error(), "the WebSocket is closed")
            return nil
        }
    }

    /// Headers as ASGI gives them (an iterable of [bytes, bytes]) or WSGI (a list of (str, str), latin-1).
    private static func readHeaders(_ object: PyPointer) -> [(name: String, value: String)]? {
        guard let iterator = PyOwned(PyObject_GetIter(object)) else { return nil }
        var headers: [(name: String, value: String)] = []
        while let pair = PyOwned(PyIter_Next(iterator.pointer)) {
            guard let items = PyOwned(PySequence_Tuple(pair.pointer)), keel_py_tuple_size(items.pointer) == 2,
                let name = text(keel_py_tuple_item(items.pointer, 0)), let value = text(keel_py_tuple_item(items.pointer, 1))
            else {
                if PyErr_Occurred() == nil {
                    PyErr_SetString(keel_py_exc_type_error(), "a response header must be a pair of bytes (ASGI) or str (WSGI)")
                }
                return nil
            }
            headers.append((name, value))
        }
        return PyErr_Occurred() == nil ? headers : nil
    }

    private static func text(_ object: PyPointer) -> String? {
        if keel_py_bytes_check(object) != 0 {
            return String(
                decoding: UnsafeRawBufferPointer(start: keel_py_bytes_data(object), count: keel_py_bytes_size(object)),
                as: UTF8.self)
        }
        return keel_py_unicode_check(object) != 0 ? Py.latin1Text(object) : nil
    }
}
