import CPython
import KeelApp
import NIOCore

/// Builds the PEP 3333 environ dict of one request. Every CGI var the front or the HTTP socket
/// derived becomes a str holding its bytes as latin-1 (PEP 3333's "native strings"); the wsgi.* keys
/// describe this worker truthfully. Call with the GIL held.
struct EnvironBuilder {
    let support: SupportObjects
    let multithread: Bool
    let multiprocess: Bool

    /// The environ and its wsgi.errors stream (flushed by the caller when the request ends).
    func make(for request: Request) -> (environ: PythonObject, errors: PythonObject)? {
        guard let environ = PyOwned(PyDict_New()) else { return nil }
        let dict = environ.pointer
        var hasServerName = false
        var hasServerPort = false
        var hasScriptName = false
        var hasPathInfo = false
        var https = false
        for variable in request.vars {
            switch variable.name {
            // PEP 3333 allows these to be absent; empty ones would trip validators (int("") fails).
            case "CONTENT_LENGTH" where variable.value.isEmpty, "CONTENT_TYPE" where variable.value.isEmpty: continue
            case "SERVER_NAME": hasServerName = true
            case "SERVER_PORT": hasServerPort = true
            case "SCRIPT_NAME": hasScriptName = true
            case "PATH_INFO": hasPathInfo = true
            case "HTTPS": https = https || variable.value == "on" || variable.value == "1"
            case "REQUEST_SCHEME": https = https || variable.value == "https"
            case "UWSGI_SCHEME": https = https || variable.value == "https"
            default: break
            }
            // The first value wins, as the request's own lookup does.
            if PyDict_GetItemString(dict, variable.name) != nil { continue }
            let value: PyOwned?
            if variable.name == "PATH_INFO", let raw = RawPath.bytes(of: variable.value, requestURI: request["REQUEST_URI"]) {
                let made: PyPointer? = raw.withUnsafeBufferPointer { bytes in
                    PyUnicode_DecodeLatin1(
                        UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count, nil)
                }
                value = PyOwned(made)
            } else {
                value = Py.latin1(variable.value)
            }
            guard let value else { return nil }
            Py.set(dict, variable.name, value)
        }
        if !hasServerName { Py.set(dict, "SERVER_NAME", Py.latin1("localhost")!) }
        if !hasServerPort { Py.set(dict, "SERVER_PORT", Py.latin1(https ? "443" : "80")!) }
        if !hasScriptName { Py.set(dict, "SCRIPT_NAME", Py.latin1("")!) }
        if !hasPathInfo { Py.set(dict, "PATH_INFO", Py.latin1(request.path)!) }
        if PyDict_GetItemString(dict, "QUERY_STRING") == nil { Py.set(dict, "QUERY_STRING", Py.latin1("")!) }
        if PyDict_GetItemString(dict, "SERVER_PROTOCOL") == nil { Py.set(dict, "SERVER_PROTOCOL", Py.latin1("HTTP/1.1")!) }
        if PyDict_GetItemString(dict, "REQUEST_METHOD") == nil { Py.set(dict, "REQUEST_METHOD", Py.latin1("GET")!) }

        PyDict_SetItemString(dict, "wsgi.version", support.version.pointer)
        Py.set(dict, "wsgi.url_scheme", Py.latin1(https ? "https" : "http")!)
        let input: PyOwned?
        if let reader = request.bodyReader {
            input = StreamedInput.make(reader, support: support)
        } else {
            input = makeInput(request.body)
        }
        guard let input else { return nil }
        Py.set(dict, "wsgi.input", input)
        guard let errors = PyOwned(PyObject_CallNoArgs(support.errorStreamClass.pointer)) else { return nil }
        PyDict_SetItemString(dict, "wsgi.errors", errors.pointer)
        PyDict_SetItemString(dict, "wsgi.multithread", multithread ? keel_py_true() : keel_py_false())
        PyDict_SetItemString(dict, "wsgi.multiprocess", multiprocess ? keel_py_true() : keel_py_false())
        PyDict_SetItemString(dict, "wsgi.run_once", keel_py_false())
        // Both inputs end at CONTENT_LENGTH, so reading to EOF is safe (a WSGI 1.0.1 extension).
        PyDict_SetItemString(dict, "wsgi.input_terminated", keel_py_true())
        PyDict_SetItemString(dict, "wsgi.file_wrapper", support.fileWrapperClass.pointer)
        return (PythonObject(owned: environ.take()), PythonObject(owned: errors.take()))
    }

    /// wsgi.input of a buffered body: a BytesIO over exactly CONTENT_LENGTH bytes, so read(), readline(), readlines()
    /// and iteration all behave as on a file and can never read past the body.
    private func makeInput(_ body: ByteBuffer) -> PyOwned? {
        let made: PyPointer?
        if body.readableBytes == 0 {
            made = keel_py_new_ref(support.emptyBytes.pointer)
        } else {
            made = body.withUnsafeReadableBytes { raw in
                PyBytes_FromStringAndSize(raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
            }
        }
        guard let bytes = PyOwned(made) else { return nil }
        return PyOwned(keel_py_call1(support.bytesIOClass.pointer, bytes.pointer))
    }
}
