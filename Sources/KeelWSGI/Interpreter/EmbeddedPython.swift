import CPython

/// The libpython this binary links (the interpreter WSGI/ASGI apps run on unless a worker library is loaded by
/// another interpreter; see PythonHost).
public enum EmbeddedPython {
    /// "3.11.2", from Py_GetVersion (callable before the interpreter starts).
    public static var version: String {
        String(String(cString: Py_GetVersion()).prefix { $0 != " " })
    }
}
