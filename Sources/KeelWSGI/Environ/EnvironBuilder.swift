import CPython
import KeelApp
import NIOCore

/// Builds the PEP 3333 environ dict of one request. Every CGI var the front or the HTTP socket
/// derived becomes a str holding its bytes as latin-1 (PEP 3333's "native strings"); the wsgi.* keys
/// describe this worker truthfully. Lean by measurement (issue 15): a copy of a per-worker base dict holds the
/// constant wsgi.* entries, keys are interned once per worker (`EnvironKeys`), an empty body is one shared
/// empty `wsgi.input`, and `wsgi.errors` is one stream per worker. Call with the GIL held.
struct EnvironBuilder {
    let support: SupportObjects
    /// wsgi.version, multithread, multiprocess, run_once, input_terminated, file_wrapper, errors.
    let base: PythonObject
    let keys = EnvironKeys()

    init(support: SupportObjects, multithread: Bool, multiprocess: Bool) {
        self.support = support
        let base = PyDict_New()!
        PyDict_SetItemString(base, "wsgi.version", support.version.pointer)
        PyDict_SetItemString(base, "wsgi.multithread", multithread ? keel_py_true() : keel_py_false())
        PyDict_SetItemString(base, "wsgi.multiprocess", multiprocess ? keel_py_true() : keel_py_false())
        PyDict_SetItemString(base, "wsgi.run_once", keel_py_false())
        // Both inputs end at CONTENT_LENGTH, so reading to EOF is safe (a WSGI 1.0.1 extension).
        PyDict_SetItemString(base, "wsgi.input_terminated", keel_py_true())
        PyDict_SetItemString(base, "wsgi.file_wrapper", support.fileWrapperClass.pointer)
        PyDict_SetItemString(base, "wsgi.errors", support.errors.pointer)
        self.base = PythonObject(owned: base)
    }

    /// The environ, or nil with a Python exception set.
    func make(for request: Request) -> PythonObject? {
        guard let environ = PyOwned(PyDict_Copy(base.pointer)) else { return nil }
        let dict = environ.pointer
        var hasServerName = false
        var hasServerPort = false
        var hasScriptName = false
        var hasPathInfo = false
        var hasQuery = false
        var hasProtocol = false
        var hasMethod = false
        var https = false
        for variable in request.vars {
            switch variable.name {
            // PEP 3333 allows these to be absent; empty ones would trip validators (int("") fails).
            case "CONTENT_LENGTH" where variable.value.isEmpty, "CONTENT_TYPE" where variable.value.isEmpty: continue
            case "SERVER_NAME": hasServerName = true
            case "SERVER_PORT": hasServerPort = true
            case "SCRIPT_NAME": hasScriptName = true
            case "PATH_INFO": hasPathInfo = true
            case "QUERY_STRING": hasQuery = true
            case "SERVER_PROTOCOL": hasProtocol = true
            case "REQUEST_METHOD": hasMethod = true
            case "HTTPS": https = https || variable.value == "on" || variable.value == "1"
            case "REQUEST_SCHEME": https = https || variable.value == "https"
            case "UWSGI_SCHEME": https = https || variable.value == "https"
            default: break
            }
            guard let key = keys.key(variable.name) else { return nil }
            // The first value wins, as the request's own lookup does.
            if PyDict_GetItem(dict, key.pointer) != nil { continue }
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
            guard let value, PyDict_SetItem(dict, key.pointer, value.pointer) == 0 else { return nil }
        }
        if !hasServerName { setDefault(dict, "SERVER_NAME", "localhost") }
        if !hasServerPort { setDefault(dict, "SERVER_PORT", https ? "443" : "80") }
        if !hasScriptName { setDefault(dict, "SCRIPT_NAME", "") }
        if !hasPathInfo { setDefault(dict, "PATH_INFO", request.path) }
        if !hasQuery { setDefault(dict, "QUERY_STRING", "") }
        if !hasProtocol { setDefault(dict, "SERVER_PROTOCOL", "HTTP/1.1") }
        if !hasMethod { setDefault(dict, "REQUEST_METHOD", "GET") }
        PyDict_SetItemString(dict, "wsgi.url_scheme", (https ? support.https : support.http).pointer)
        let input: PyOwned?
        if let reader = request.bodyReader {
            input = InputObject.make(InputObject.State(streaming: reader))
        } else if request.body.readableBytes > 0 {
            input = InputObject.make(InputObject.State(buffered: request.body))
        } else {
            input = PyOwned(keel_py_new_ref(support.emptyInput.pointer))
        }
        guard let input else { return nil }
        Py.set(dict, "wsgi.input", input)
        return PythonObject(owned: environ.take())
    }

    private func setDefault(_ dict: PyPointer, _ name: String, _ value: String) {
        guard let key = keys.key(name), let value = Py.latin1(value) else { return PyErr_Clear() }
        PyDict_SetItem(dict, key.pointer, value.pointer)
    }

}
