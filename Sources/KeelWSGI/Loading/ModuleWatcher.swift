import CPython
import KeelApp

#if canImport(Glibc)
import Glibc
#endif

/// --py-autoreload (uWSGI) / --reload (gunicorn): a thread of the worker that every `interval` seconds lists the
/// loaded modules' source files (under the GIL, briefly) and stats them without it. Each change is reported once, as
/// "PATH MTIME_NS SIZE", so the master can tell the same edit seen by several workers from a new one.
final class ModuleWatcher: @unchecked Sendable {
    struct Stamp: Equatable {
        var seconds: Int
        var nanoseconds: Int
        var size: Int

        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            seconds = info.st_mtim.tv_sec
            nanoseconds = info.st_mtim.tv_nsec
            size = Int(info.st_size)
        }
    }

    private let listFiles: PythonObject
    private let forgetBytecode: PythonObject
    private let interval: Int
    private let report: @Sendable (String) -> Void
    /// Only the watcher's thread touches it after `start`.
    private var known: [String: Stamp] = [:]

    /// Takes the baseline now (the caller holds the GIL, right after the import) so an edit made while the worker
    /// was starting is still seen, then watches on a thread of its own.
    init(support: SupportObjects, interval: Int, report: @escaping @Sendable (String) -> Void) throws(AppLoadError) {
        guard let list = Py.attribute(support.module.pointer, "module_files"),
            let forget = Py.attribute(support.module.pointer, "forget_bytecode")
        else { throw support.failure("cannot watch the modules for --py-autoreload") }
        listFiles = PythonObject(owned: list.take())
        forgetBytecode = PythonObject(owned: forget.take())
        self.interval = interval
        self.report = report
        for path in files() { known[path] = Stamp(path: path) }
    }

    /// Runs for the worker's life (it exits with the process).
    func start() {
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let watcher = Unmanaged<ModuleWatcher>.fromOpaque(raw!).takeRetainedValue()
            while true {
                sleep(UInt32(watcher.interval))
                watcher.check()
            }
        }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(thread)
    }

    private func check() {
        let paths = GIL.with { files() }
        for path in paths {
            let now = Stamp(path: path)
            guard let before = known[path] else {
                known[path] = now  // imported since the last look: its baseline
                continue
            }
            if now != before, let now {
                known[path] = now
                GIL.with { forget(path) }
                report("\(path) \(now.seconds * 1_000_000_000 + now.nanoseconds) \(now.size)")
            }
        }
    }

    /// `forget_bytecode(path)`, before the master is told: the new workers must compile the edited source.
    private func forget(_ path: String) {
        guard let argument = Py.string(path), PyOwned(keel_py_call1(forgetBytecode.pointer, argument.pointer)) != nil
        else { return PyErr_Clear() }
    }

    /// `module_files()`; called holding the GIL.
    private func files() -> [String] {
        guard let list = PyOwned(PyObject_CallNoArgs(listFiles.pointer)) else {
            PyErr_Clear()
            return []
        }
        return (0..<keel_py_list_size(list.pointer)).compactMap { Py.text(keel_py_list_item(list.pointer, $0)) }
    }
}
