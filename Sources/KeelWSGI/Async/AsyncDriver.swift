import CPython
import KeelApp

/// The driver module (`AsyncDriverModule`) compiled in a worker, with `_keel_async` installed before it.
struct AsyncDriver {
    let module: PythonObject

    static func make(support: SupportObjects) throws(AppLoadError) -> AsyncDriver {
        guard AsyncBridge.install() else { throw support.failure("cannot install the async worker's builtins") }
        guard let code = PyOwned(Py_CompileString(AsyncDriverModule.source, "<keel-async>", Py_file_input)),
            let module = PyImport_ExecCodeModule(AsyncDriverModule.name, code.pointer)
        else { throw support.failure("cannot start the async worker's support code") }
        return AsyncDriver(module: PythonObject(owned: module))
    }

    /// Calls `name(argument)`; its LoadError (or any exception) becomes the load error.
    func call(_ name: String, _ argument: PyPointer, support: SupportObjects) throws(AppLoadError) {
        guard let function = Py.attribute(module.pointer, name), PyOwned(keel_py_call1(function.pointer, argument)) != nil
        else { throw support.loadFailure(flag: name) }
    }

    /// Refuses what is not an ASGI 3 app, in one line naming the flag.
    func checkASGIApp(_ app: PythonObject, flag: String, support: SupportObjects) throws(AppLoadError) {
        guard let check = Py.attribute(module.pointer, "check_asgi_app"), let flagObject = Py.string(flag),
            let verdict = PyOwned(keel_py_call2(check.pointer, app.pointer, flagObject.pointer))
        else { throw support.loadFailure(flag: flag) }
        if verdict.pointer != Py.none { throw AppLoadError(Py.text(verdict.pointer) ?? "\(flag): not an ASGI 3 app") }
    }
}
