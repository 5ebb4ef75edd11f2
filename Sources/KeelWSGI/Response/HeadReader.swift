import CPython

/// Reads what the app gave start_response: the status as `NNN Reason` and the headers as latin-1
/// (str, str) pairs. Call with the GIL held.
struct HeadReader {
    let support: SupportObjects
    let startResponse: PyPointer

    struct Head {
        var status: Int
        /// As the app wrote it ("200 Okay-ish" keeps "Okay-ish").
        var reason: String
        var headers: [(name: String, value: String)]
    }

    func read() throws(AppFailure) -> Head {
        guard let status = PyOwned(PyObject_GetAttr(startResponse, support.names.status.pointer)),
            status.pointer != Py.none
        else {
            PyErr_Clear()
            throw AppFailure("the app returned without calling start_response()")
        }
        guard let text = Py.text(status.pointer), let code = StatusLine.code(of: text) else {
            throw AppFailure("start_response(): status \(Py.text(status.pointer)?.debugDescription ?? "?") is not 'NNN Reason'")
        }
        guard let list = PyOwned(PyObject_GetAttr(startResponse, support.names.headers.pointer)) else {
            PyErr_Clear()
            throw AppFailure("start_response(): no headers")
        }
        var headers: [(name: String, value: String)] = []
        let count = keel_py_list_size(list.pointer)
        headers.reserveCapacity(count)
        for index in 0..<count {
            let pair = keel_py_list_item(list.pointer, index)!
            // start_response checked the shape; a header list mutated afterwards is checked again here.
            guard keel_py_tuple_check(pair) != 0, keel_py_tuple_size(pair) == 2,
                let name = Py.latin1Text(keel_py_tuple_item(pair, 0)),
                let value = Py.latin1Text(keel_py_tuple_item(pair, 1))
            else { throw AppFailure("response header \(index + 1) is not a (str, str) tuple of latin-1 text") }
            headers.append((name, value))
        }
        return Head(status: code, reason: String(text.dropFirst(4)), headers: headers)
    }

    /// Marks the head as sent: a later start_response(..., exc_info) re-raises (PEP 3333).
    func commit() {
        PyObject_SetAttr(startResponse, support.names.committed.pointer, keel_py_true())
    }
}
