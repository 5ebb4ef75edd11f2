import CPython
import KeelApp
import NIOCore

/// One request's link from the app's Python calls to the connection: the head goes out at the first
/// write() or the first non-empty body chunk, and each write() is sent before it returns (PEP 3333).
/// Used on the request's thread with the GIL held; the GIL is released around every send.
final class WSGIExchange {
    private let writer: any ResponseWriter
    private let support: SupportObjects
    /// Borrowed: the request's start_response, alive while the app runs (it owns the write hook,
    /// which owns this object, so a strong reference here would be a cycle Python cannot collect).
    var startResponse: PyPointer?
    private(set) var headSent = false
    /// Once the request is over, a write() the app kept around must not reach the connection.
    private var finished = false

    init(writer: any ResponseWriter, support: SupportObjects) {
        self.writer = writer
        self.support = support
    }

    /// The function start_response's write() calls with its bytes.
    func makeWriteHook() -> PyOwned? {
        PyClosure.make { [self] data in write(data) }
    }

    /// The head as the app gave it to start_response.
    func readHead() throws(AppFailure) -> HeadReader.Head {
        guard let startResponse else { throw AppFailure("the request is over") }
        return try HeadReader(support: support, startResponse: startResponse).read()
    }

    /// Sends the head if it has not gone yet; after this a start_response(…, exc_info) re-raises.
    func sendHead() throws(AppFailure) {
        guard !headSent, let startResponse else { return }
        let reader = HeadReader(support: support, startResponse: startResponse)
        let head = try reader.read()
        do {
            try GIL.released { try writer.writeHead(status: head.status, reason: head.reason, headers: head.headers) }
        } catch {
            throw AppFailure("\(error)")
        }
        headSent = true
        reader.commit()
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

    func finish() {
        finished = true
        startResponse = nil
    }

    private func write(_ data: PyPointer) -> PyPointer? {
        guard !finished else { return PyClosure.raise(keel_py_exc_runtime_error(), "write() called after the response ended") }
        guard keel_py_bytes_check(data) != 0 else { return PyClosure.raise(keel_py_exc_type_error(), "write() takes bytes") }
        do {
            try sendHead()
            try send(data)
        } catch {
            return PyClosure.raise(keel_py_exc_os_error(), "write(): \(error)")
        }
        return keel_py_new_ref(Py.none)
    }
}
