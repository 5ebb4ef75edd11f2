import CPython
import KeelApp

/// Starts the embedded interpreter (Debian's libpython3.11) in a worker, configured like uWSGI's:
/// no Python signal handlers (the pool's signals stay the pool's), unbuffered stdio (print() reaches
/// the log at once), and `sys.prefix` the `--virtualenv` when one is given.
enum PythonInterpreter {
    /// The interpreter the library belongs to: its stdlib is what the embedded one must find.
    static let systemExecutable = "/usr/bin/python3"

    /// Initialises Python; the calling thread holds the GIL afterwards.
    static func start(virtualenv: String?) throws(AppLoadError) {
        var config = PyConfig()
        PyConfig_InitPythonConfig(&config)
        defer { PyConfig_Clear(&config) }
        config.install_signal_handlers = 0
        // PYTHONHOME/PYTHONPATH of the caller's shell (pyenv's, another version's) must not steer
        // Debian's libpython to a foreign stdlib; PYTHONPATH is added to sys.path after start-up.
        config.use_environment = 0
        config.buffered_stdio = 0
        config.parse_argv = 0
        // A venv's bin/python3: site.py finds its pyvenv.cfg and makes sys.prefix the venv, as uWSGI's -H does.
        let executable = virtualenv.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/bin/python3" }
            ?? systemExecutable
        var status = withUnsafeMutablePointer(to: &config) { config in
            let first = PyConfig_SetBytesString(config, &config.pointee.program_name, executable)
            if PyStatus_Exception(first) != 0 { return first }
            return PyConfig_SetBytesString(config, &config.pointee.executable, executable)
        }
        if PyStatus_Exception(status) == 0 {
            status = withUnsafeMutablePointer(to: &config) { config in
                let name = strdup("keel-pool")
                defer { free(name) }
                var argv: [UnsafeMutablePointer<CChar>?] = [name]
                return PyConfig_SetBytesArgv(config, 1, &argv)
            }
        }
        if PyStatus_Exception(status) == 0 { status = Py_InitializeFromConfig(&config) }
        if PyStatus_Exception(status) != 0 {
            let reason = status.err_msg.map { String(cString: $0) } ?? "unknown error"
            throw AppLoadError("cannot start the embedded Python (\(executable)): \(reason)")
        }
    }
}
