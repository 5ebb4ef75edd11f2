import CPython
import KeelApp
import NIOCore

/// One request's link from the app's Python calls to the connection: the head goes out at the first
/// write() or the first non-empty body chunk, and each write() is sent before it returns (PEP 3333).
/// Used on the request's thread with the GIL held; the GIL is released around every send.
final class WSGIExchange {
    private let writer: any ResponseWriter
    private let support: SupportObjects
    /// What the app last gave start_response (owned references), nil before its first call.
    private(set) var status: PyPointer?
    private var headers: PyPointer?
    /// The `write` builtin start_response returns, made at its first call. It holds the capsule that holds this
    /// object: `finish` drops it, which breaks that cycle when the request ends.
    private var writeFunction: PyPointer?
    private(set) var headSent = false
    /// Once the request is over, a write() the app kept around must not reach the connection.
    private var finished = false

    init(writer: any ResponseWriter, support: SupportObjects) {
        self.writer = writer
        self.support = support
    }

    /// start_response accepted a head (checked by `StartResponse`); a later call with exc_info replaces it.
    func setHead(status: PyPointer, headers: PyPointer) {
        let oldStatus = self.status
        let oldHeaders = self.headers
        self.status = keel_py_new_ref(status)
        self.headers = keel_py_new_ref(headers)
        if let oldStatus { Py_DecRef(oldStatus) }
        if let oldHeaders { Py_DecRef(oldHeaders) }
    }

    /// A new reference to this request's write(), made once over start_response's capsule.
    func writeFunction(capsule: PyPointer, definition: UnsafeMutablePointer<PyMethodDef>) -> PyPointer? {
        if writeFunction == nil { writeFunction = PyCMethod_New(definition, capsule, nil, nil) }
        return writeFunction.map { keel_py_new_ref($0) }
    }

    /// The head as the app gave it to start_response.
    func readHead() throws(AppFailure) -> HeadReader.Head {
        guard !finished else { throw AppFailure("the request is over") }
        return try HeadReader(status: status, headers: headers).read()
    }

    /// Sends the head if it has not gone yet; after this a start_response(…, exc_info) re-raises.
    func sendHead() throws(AppFailure) {
        guard !headSent, !finished else { return }
        let head = try HeadReader(status: status, headers: headers).read()
        do {
            try GIL.released { try writer.writeHead(status: head.status, reason: head.reason, headers: head.headers) }
        } catch {
            throw AppFailure("\(error)")
        }
        headSent = true
    }

    /// Sends body bytes (the head must have gone).
    func send(_ bytes: PyPointer) throws(AppFailure) {
        let count = keel_py_bytes_size(bytes)
        guard count > 0 else { return }
        var buffer = ByteBuffer()
        buffer.writeBytes(UnsafeRawBufferPointer(start: keel_py_bytes_data(bytes), count: count))
        do {
            try GIL.released { try writer.write(buffer) }
        } catch {
            throw AppFailure("\(error)")
        }
    }

    /// The request is over: its Python references go (GIL held).
    func finish() {
        finished = true
        for reference in [status, headers, writeFunction] { if let reference { Py_DecRef(reference) } }
        status = nil
        headers = nil
        writeFunction = nil
    }

    /// write(data), PEP 3333's: only after start_response, bytes only, sent before it returns.
    func write(_ data: PyPointer) -> PyPointer? {
        guard !finished else { return StartResponse.raise(keel_py_exc_runtime_error(), "write() called after the response ended") }
        guard status != nil else { return StartResponse.raise(keel_py_exc_assertion_error(), "write() called before start_response()") }
        guard keel_py_bytes_check_exact(data) != 0 else {
            return StartResponse.raise(
                keel_py_exc_type_error(), "write() takes bytes, not \(String(cString: keel_py_type_name(data)))")
        }
        do {
            try sendHead()
            try send(data)
        } catch {
            return StartResponse.raise(keel_py_exc_os_error(), "write(): \(error)")
        }
        return keel_py_new_ref(Py.none)
    }
}
