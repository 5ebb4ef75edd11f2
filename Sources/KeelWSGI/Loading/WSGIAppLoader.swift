import CPython
import KeelApp

#if canImport(Glibc)
import Glibc
#endif

/// Loads the WSGI app in a worker: environment, directory, interpreter, sys.path, import. Runs on the
/// worker's main thread before any app thread exists; the GIL is released when it returns.
public enum WSGIAppLoader {
    /// A WSGI app for the worker's threads.
    public static func load(_ configuration: WSGIConfiguration) throws(AppLoadError) -> WSGIHandler {
        guard case .sync(let handler) = try loadApp(configuration), let handler = handler as? WSGIHandler else {
            throw AppLoadError("\(configuration.flag): not a WSGI app")
        }
        return handler
    }

    /// The app as its interface asks: WSGI on threads, or ASGI / gevent on a loop of their own.
    public static func loadApp(_ configuration: WSGIConfiguration) throws(AppLoadError) -> LoadedApp {
        for variable in configuration.environment { setenv(variable.name, variable.value, 1) }
        if let chdir = configuration.chdir, Glibc.chdir(chdir) != 0 {
            throw AppLoadError("--chdir \(chdir): \(String(cString: strerror(errno)))")
        }
        // Hosted (the app's interpreter loaded the worker library and holds the GIL here), or embedded.
        if Py_IsInitialized() == 0 { try PythonInterpreter.start(virtualenv: configuration.virtualenv) }
        defer { _ = PyEval_SaveThread() }  // the main thread only waits for signals from now on
        ErrorLog.sink = configuration.log
        let support = try SupportObjects.make()
        guard let arm = Py.attribute(support.module.pointer, "arm_stack_dump"),
            let signal = PyOwned(PyLong_FromLong(Int(WSGIHandler.stackDumpSignal))),
            PyOwned(keel_py_call1(arm.pointer, signal.pointer)) != nil
        else { throw support.failure("cannot prepare --harakiri's stack dump") }
        try setEnvironment(configuration.environment, support: support)
        let driver = configuration.interface == .wsgi ? nil : try AsyncDriver.make(support: support)
        if case .gevent(let patch) = configuration.interface {
            // Before the app's import, as gunicorn's gevent worker patches before loading the app.
            try driver!.call("patch_gevent", patch ? keel_py_true() : keel_py_false(), support: support)
        }
        let app = try importApp(configuration, support: support)
        if configuration.autoreloadSeconds > 0, let report = configuration.autoreloadReport {
            try ModuleWatcher(support: support, interval: configuration.autoreloadSeconds, report: report).start()
        }
        switch configuration.interface {
        case .wsgi:
            return .sync(WSGIHandler(app: app, support: support, configuration: configuration))
        case .asgi(let loop):
            try driver!.checkASGIApp(app, flag: configuration.flag, support: support)
            return .async(
                try AsyncPythonApp(
                    kind: .asgi(loop: loop), app: app, driver: driver!.module, support: support, configuration: configuration))
        case .gevent:
            return .async(
                try AsyncPythonApp(kind: .gevent, app: app, driver: driver!.module, support: support, configuration: configuration))
        }
    }

    /// `os.environ` too: a hosting interpreter copied the environment before `setenv` ran.
    private static func setEnvironment(_ variables: [(name: String, value: String)], support: SupportObjects)
        throws(AppLoadError)
    {
        guard !variables.isEmpty else { return }
        guard let set = Py.attribute(support.module.pointer, "set_environment"), let pairs = PyOwned(PyDict_New())
        else { throw support.failure("cannot set --env") }
        for variable in variables {
            guard let value = Py.string(variable.value) else { throw support.failure("cannot set --env") }
            Py.set(pairs.pointer, variable.name, value)
        }
        guard PyOwned(keel_py_call1(set.pointer, pairs.pointer)) != nil else { throw support.failure("cannot set --env") }
    }

    private static func importApp(_ configuration: WSGIConfiguration, support: SupportObjects) throws(AppLoadError)
        -> PythonObject
    {
        var cwd = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let directory = getcwd(&cwd, cwd.count).map { String(cString: $0) } ?? "."
        guard let prepare = Py.attribute(support.module.pointer, "prepare"),
            let directoryObject = Py.string(directory), let paths = PyOwned(PyList_New(0))
        else { throw support.failure("cannot prepare sys.path") }
        for entry in configuration.pythonPath {
            guard let item = Py.string(entry) else { throw support.failure("cannot prepare sys.path") }
            PyList_Append(paths.pointer, item.pointer)
        }
        guard PyOwned(keel_py_call2(prepare.pointer, directoryObject.pointer, paths.pointer)) != nil else {
            throw support.failure("cannot prepare sys.path")
        }

        guard let load = Py.attribute(support.module.pointer, "load"), let args = PyOwned(PyTuple_New(4)) else {
            throw support.failure("cannot load the app")
        }
        let module: PyOwned
        let file: PyOwned
        switch configuration.source {
        case .module(let name):
            module = Py.string(name)!
            file = PyOwned(owning: keel_py_new_ref(Py.none))
        case .file(let path):
            module = PyOwned(owning: keel_py_new_ref(Py.none))
            file = Py.string(path)!
        }
        PyTuple_SetItem(args.pointer, 0, module.take())
        PyTuple_SetItem(args.pointer, 1, file.take())
        PyTuple_SetItem(args.pointer, 2, Py.string(configuration.callable)!.take())
        PyTuple_SetItem(args.pointer, 3, Py.string(configuration.flag)!.take())
        guard let app = PyOwned(PyObject_CallObject(load.pointer, args.pointer)) else {
            throw support.loadFailure(flag: configuration.flag)
        }
        return PythonObject(owned: app.take())
    }
}

/// Where `wsgi.errors` lines go: the pool's log.
enum ErrorLog {
    nonisolated(unsafe) static var sink: (@Sendable (String) -> Void)?
}
