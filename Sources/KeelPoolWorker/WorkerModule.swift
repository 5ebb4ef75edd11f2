import CPython
import KeelPoolCLI

/// `libKeelPoolWorker.so` as the Python extension module `keel_pool_worker`: the master starts each WSGI worker as
/// the app's interpreter running `PythonHost.bootstrap`, which imports this and calls `run(arguments)`. The C API
/// comes from that interpreter (the library links no libpython), so one build serves CPython 3.9 to 3.13.
@_cdecl("PyInit_keel_pool_worker")
public func initWorkerModule() -> UnsafeMutablePointer<PyObject>? {
    let methods = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 2)
    methods[0] = PyMethodDef(
        ml_name: UnsafePointer(strdup("run")), ml_meth: { _, arguments in runWorker(arguments) }, ml_flags: METH_O,
        ml_doc: nil)
    methods[1] = PyMethodDef(ml_name: nil, ml_meth: nil, ml_flags: 0, ml_doc: nil)
    let definition = UnsafeMutablePointer<PyModuleDef>.allocate(capacity: 1)
    return keel_py_module_create(definition, strdup("keel_pool_worker"), methods)
}

/// `run(list_of_str)`: parses the worker's flags as `keel-pool _worker` does and serves until the process ends.
/// Called on the interpreter's main thread holding the GIL, which the app loader releases once the app is imported.
private func runWorker(_ list: UnsafeMutablePointer<PyObject>?) -> UnsafeMutablePointer<PyObject>? {
    guard let list, keel_py_list_check(list) != 0 else {
        PyErr_SetString(keel_py_exc_type_error(), "run() takes the worker's arguments as a list of str")
        return nil
    }
    var arguments: [String] = []
    for index in 0..<keel_py_list_size(list) {
        guard let text = PyUnicode_AsUTF8(keel_py_list_item(list, index)) else { return nil }
        arguments.append(String(cString: text))
    }
    do {
        let command = try WorkerCommand.parse(arguments)
        try command.run()
    } catch {
        WorkerCommand.exit(withError: error)
    }
    fatalError("the worker runtime returned")
}
