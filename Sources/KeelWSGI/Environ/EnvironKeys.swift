import CPython

/// The environ's key objects, interned and made once per worker: a key set per request is then a dict insert with
/// the hash the str already holds, not a str built and hashed from C text (bjoern's pre-created keys). Header
/// names are open-ended, so only the first `capacity` distinct names are kept; later ones are made per request.
/// Touched only with the GIL held.
final class EnvironKeys: @unchecked Sendable {
    static let capacity = 256

    private var keys: [String: PythonObject] = [:]

    /// A new reference to the key object for `name`.
    func key(_ name: String) -> PyOwned? {
        if let known = keys[name] { return PyOwned(keel_py_new_ref(known.pointer)) }
        guard let made = PyOwned(PyUnicode_InternFromString(name)) else { return nil }
        if keys.count < Self.capacity { keys[name] = PythonObject(owned: keel_py_new_ref(made.pointer)) }
        return made
    }
}
