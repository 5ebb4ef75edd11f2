import CPython

/// Reads what the app gave start_response: the status as `NNN Reason` and the headers as latin-1
/// (str, str) pairs. Call with the GIL held.
struct HeadReader {
    /// Borrowed from the request's `WSGIExchange`: what start_response was last given (nil: never called).
    let status: PyPointer?
    let headers: PyPointer?

    struct Head {
        var status: Int
        /// As the app wrote it ("200 Okay-ish" keeps "Okay-ish").
        var reason: String
        var headers: [(name: String, value: String)]
    }

    func read() throws(AppFailure) -> Head {
        guard let status, let headers else { throw AppFailure("the app returned without calling start_response()") }
        guard let text = Py.text(status), let code = StatusLine.code(of: text) else {
            throw AppFailure("start_response(): status \(Py.text(status)?.debugDescription ?? "?") is not 'NNN Reason'")
        }
        var fields: [(name: String, value: String)] = []
        let count = keel_py_list_size(headers)
        fields.reserveCapacity(count)
        for index in 0..<count {
            let pair = keel_py_list_item(headers, index)!
            // start_response checked the shape; a header list mutated afterwards is checked again here.
            guard keel_py_tuple_check(pair) != 0, keel_py_tuple_size(pair) == 2,
                let name = Py.latin1Text(keel_py_tuple_item(pair, 0)),
                let value = Py.latin1Text(keel_py_tuple_item(pair, 1))
            else { throw AppFailure("response header \(index + 1) is not a (str, str) tuple of latin-1 text") }
            fields.append((name, value))
        }
        return Head(status: code, reason: String(text.dropFirst(4)), headers: fields)
    }
}
