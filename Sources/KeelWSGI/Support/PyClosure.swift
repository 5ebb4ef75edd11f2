import CPython

/// A Python builtin taking one argument (METH_O) that calls a Swift closure: per-request hooks such
/// as write() and wsgi.input's readinto. The closure is kept by a capsule the builtin holds, so it
/// lives exactly as long as Python can call it. Call with the GIL held.
enum PyClosure {
    /// Returns a new reference, or nil with a Python exception set.
    typealias Body = (PyPointer) -> PyPointer?

    private final class Box {
        let body: Body
        init(_ body: @escaping Body) { self.body = body }
    }

    nonisolated(unsafe) private static let capsuleName = UnsafePointer(strdup("keel.closure")!)

    /// One method definition shared by every closure: the capsule passed as `self` tells them apart.
    nonisolated(unsafe) private static let definition: UnsafeMutablePointer<PyMethodDef> = {
        let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
        definition.initialize(
            to: PyMethodDef(
                ml_name: UnsafePointer(strdup("keel_hook")),
                ml_meth: { capsule, argument in
                    guard let capsule, let argument,
                        let raw = PyCapsule_GetPointer(capsule, PyClosure.capsuleName)
                    else { return nil }
                    return Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue().body(argument)
                },
                ml_flags: METH_O, ml_doc: nil))
        return definition
    }()

    static func make(_ body: @escaping Body) -> PyOwned? {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        guard
            let capsule = PyOwned(
                PyCapsule_New(box, capsuleName) { capsule in
                    guard let capsule, let raw = PyCapsule_GetPointer(capsule, PyClosure.capsuleName) else { return }
                    Unmanaged<Box>.fromOpaque(raw).release()
                })
        else {
            Unmanaged<Box>.fromOpaque(box).release()
            return nil
        }
        return PyOwned(PyCMethod_New(definition, capsule.pointer, nil, nil))
    }

    /// Sets a Python exception of `type` with `message`; returns nil for the hook to return.
    static func raise(_ type: PyPointer, _ message: String) -> PyPointer? {
        PyErr_SetString(type, message)
        return nil
    }
}
