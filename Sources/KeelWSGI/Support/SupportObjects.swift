import CPython
import KeelApp

/// The support module's classes and the constants every request uses, looked up once per worker.
/// Immutable after load and only touched with the GIL held.
final class SupportObjects: @unchecked Sendable {
    let module: PythonObject
    let fileWrapperClass: PythonObject
    let formatException: PythonObject
    /// (1, 0), the value of wsgi.version.
    let version: PythonObject
    /// wsgi.input of every request without a body (stateless).
    let emptyInput: PythonObject
    /// wsgi.errors: one stream per worker, as uWSGI and gunicorn hand every request the same one.
    let errors: PythonObject
    /// wsgi.url_scheme's two values.
    let http: PythonObject
    let https: PythonObject
    let names: AttributeNames

    /// Interned attribute names, so a lookup per request does not build a str.
    struct AttributeNames {
        let close: PythonObject
        let sendable: PythonObject

        init() {
            func intern(_ name: String) -> PythonObject { PythonObject(owned: PyUnicode_InternFromString(name)) }
            close = intern("close")
            sendable = intern("sendable")
        }
    }

    private init(module: PythonObject) throws(AppLoadError) {
        self.module = module
        func attribute(_ name: String) throws(AppLoadError) -> PythonObject {
            guard let value = PyObject_GetAttrString(module.pointer, name) else {
                throw AppLoadError("the WSGI support module has no \(name)")
            }
            return PythonObject(owned: value)
        }
        fileWrapperClass = try attribute("FileWrapper")
        formatException = try attribute("format_exception")
        let versionTuple = PyTuple_New(2)!
        PyTuple_SetItem(versionTuple, 0, PyLong_FromLong(1))
        PyTuple_SetItem(versionTuple, 1, PyLong_FromLong(0))
        version = PythonObject(owned: versionTuple)
        emptyInput = try attribute("EMPTY_INPUT")
        guard InputObject.type != nil else { throw AppLoadError("cannot make the wsgi.input type") }
        guard let errors = ErrorsObject.make() else { throw AppLoadError("cannot make wsgi.errors") }
        self.errors = PythonObject(owned: errors.take())
        http = PythonObject(owned: PyUnicode_InternFromString("http"))
        https = PythonObject(owned: PyUnicode_InternFromString("https"))
        names = AttributeNames()
    }

    /// Compiles and imports `_keel_wsgi`.
    static func make() throws(AppLoadError) -> SupportObjects {
        guard let code = PyOwned(Py_CompileString(SupportModule.source, "<keel-wsgi>", Py_file_input)),
            let module = PyImport_ExecCodeModule(SupportModule.name, code.pointer)
        else {
            let text = Py.takeErrorText(formatter: nil) ?? "unknown error"
            throw AppLoadError("cannot start the WSGI support code: \(text)")
        }
        return try SupportObjects(module: PythonObject(owned: module))
    }

    /// The pending Python exception as a startup failure.
    func failure(_ what: String) -> AppLoadError {
        let text = Py.takeErrorText(formatter: formatException.pointer) ?? "unknown error"
        return AppLoadError("\(what): \(text.split(separator: "\n").last.map(String.init) ?? text)", details: text)
    }

    /// The loader's LoadError (summary + traceback), or any other exception as a failure.
    func loadFailure(flag: String) -> AppLoadError {
        guard let raised = Py.takeException() else { return AppLoadError("\(flag): cannot load the app") }
        let exception = PyOwned(owning: raised)
        if let summary = Py.textAttribute(exception.pointer, "summary"),
            let details = Py.textAttribute(exception.pointer, "details")
        {
            return AppLoadError(summary, details: details)
        }
        PyErr_Clear()
        let text = Py.describe(exception: exception.take(), formatter: formatException.pointer)
        return AppLoadError("\(flag): \(text.split(separator: "\n").last.map(String.init) ?? text)", details: text)
    }
}
