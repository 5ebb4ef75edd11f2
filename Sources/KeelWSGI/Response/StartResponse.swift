import CPython

/// `start_response` and the `write()` it returns, as builtins implemented in Swift (a `METH_FASTCALL` function and a
/// `METH_O` one over one capsule), not a Python class: no Python frame, instance or attribute lookups per request.
/// The head the app gives is kept by the request's `WSGIExchange`. PEP 3333's rules: a second call without
/// `exc_info` raises `AssertionError`; with `exc_info` after the head went out, the app's exception is re-raised;
/// the status must be a `str` and the headers a `list` of `(str, str)` tuples (`TypeError` otherwise).
enum StartResponse {
    /// `start_response(status, headers, exc_info=None)`.
    nonisolated(unsafe) private static let callDefinition: UnsafeMutablePointer<PyMethodDef> = {
        typealias FastCall = @convention(c) (PyPointer?, UnsafePointer<PyPointer?>?, Py_ssize_t, PyPointer?) -> PyPointer?
        let call: FastCall = { capsule, args, count, keywords in
            guard let exchange = StartResponse.exchange(of: capsule) else { return nil }
            return StartResponse.start(exchange, capsule: capsule!, args: args, count: count, keywords: keywords)
        }
        let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
        definition.initialize(
            to: PyMethodDef(
                ml_name: UnsafePointer(strdup("start_response")), ml_meth: unsafeBitCast(call, to: PyCFunction.self),
                ml_flags: METH_FASTCALL | METH_KEYWORDS, ml_doc: nil))
        return definition
    }()

    /// `write(data)`.
    nonisolated(unsafe) private static let writeDefinition: UnsafeMutablePointer<PyMethodDef> = {
        let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
        definition.initialize(
            to: PyMethodDef(
                ml_name: UnsafePointer(strdup("write")),
                ml_meth: { capsule, data in
                    guard let exchange = StartResponse.exchange(of: capsule), let data else { return nil }
                    return exchange.write(data)
                },
                ml_flags: METH_O, ml_doc: nil))
        return definition
    }()

    /// The request's start_response; the capsule keeps `exchange` alive while Python holds either builtin.
    static func make(for exchange: WSGIExchange) -> PyOwned? {
        guard let capsule = SwiftCapsule.make(retaining: exchange) else { return nil }
        return PyOwned(PyCMethod_New(callDefinition, capsule.pointer, nil, nil))
    }

    private static func exchange(of capsule: PyPointer?) -> WSGIExchange? {
        SwiftCapsule.object(of: capsule, as: WSGIExchange.self)
    }

    private static func start(
        _ exchange: WSGIExchange, capsule: PyPointer, args: UnsafePointer<PyPointer?>?, count: Py_ssize_t,
        keywords: PyPointer?
    ) -> PyPointer? {
        var excInfo: PyPointer? = count >= 3 ? args?[2] : nil
        let keywordCount = keywords.map { keel_py_tuple_size($0) } ?? 0
        for index in 0..<keywordCount {
            let name = Py.text(keel_py_tuple_item(keywords!, index)) ?? ""
            guard name == "exc_info", count < 3 else {
                return raise(keel_py_exc_type_error(), "start_response() got an unexpected keyword argument '\(name)'")
            }
            excInfo = args?[count + index]
        }
        guard count == 2 || count == 3, let args, let status = args[0], let headers = args[1] else {
            return raise(keel_py_exc_type_error(), "start_response() takes status, headers and an optional exc_info")
        }
        if let excInfo, excInfo != Py.none, keel_py_is_true(excInfo) == 1 {
            if exchange.headSent {
                // PEP 3333: once the head is sent, the app's own exception propagates.
                guard keel_py_tuple_check(excInfo) != 0, keel_py_tuple_size(excInfo) == 3 else {
                    return raise(keel_py_exc_type_error(), "start_response(): exc_info must be a sys.exc_info() tuple")
                }
                PyErr_Restore(
                    keel_py_new_ref(keel_py_tuple_item(excInfo, 0)), keel_py_new_ref(keel_py_tuple_item(excInfo, 1)),
                    keel_py_new_ref(keel_py_tuple_item(excInfo, 2)))
                return nil
            }
        } else if exchange.status != nil {
            return raise(keel_py_exc_assertion_error(), "start_response() called a second time without exc_info")
        }
        guard keel_py_unicode_check_exact(status) != 0 else {
            return raise(keel_py_exc_type_error(), "start_response(): status must be str, not \(typeName(status))")
        }
        guard keel_py_list_check_exact(headers) != 0 else {
            return raise(keel_py_exc_type_error(), "start_response(): headers must be a list, not \(typeName(headers))")
        }
        for index in 0..<keel_py_list_size(headers) {
            let header = keel_py_list_item(headers, index)!
            guard keel_py_tuple_check_exact(header) != 0, keel_py_tuple_size(header) == 2,
                keel_py_unicode_check_exact(keel_py_tuple_item(header, 0)) != 0,
                keel_py_unicode_check_exact(keel_py_tuple_item(header, 1)) != 0
            else {
                return raise(
                    keel_py_exc_type_error(), "start_response(): each header must be a (str, str) tuple, not \(repr(header))")
            }
        }
        exchange.setHead(status: status, headers: headers)
        return exchange.writeFunction(capsule: capsule, definition: writeDefinition)
    }

    static func raise(_ type: PyPointer, _ message: String) -> PyPointer? {
        PyErr_SetString(type, message)
        return nil
    }

    private static func typeName(_ object: PyPointer) -> String { String(cString: keel_py_type_name(object)) }

    private static func repr(_ object: PyPointer) -> String {
        guard let text = PyOwned(PyObject_Repr(object)) else {
            PyErr_Clear()
            return typeName(object)
        }
        return Py.text(text.pointer) ?? typeName(object)
    }
}
