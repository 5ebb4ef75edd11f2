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

    /// One method definition shared by every closure: the capsule passed as `self` tells them apart.
    nonisolated(unsafe) private static let definition: UnsafeMutablePointer<PyMethodDef> = {
        let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
        definition.initialize(
            to: PyMethodDef(
                ml_name: UnsafePointer(strdup("keel_hook")),
                ml_meth: { capsule, argument in
                    guard let argument, let box = SwiftCapsule.object(of: capsule, as: Box.self) else { return nil }
                    return box.body(argument)
                },
                ml_flags: METH_O, ml_doc: nil))
        return definition
    }()

    static func make(_ body: @escaping Body) -> PyOwned? {
        guard let capsule = SwiftCapsule.make(retaining: Box(body)) else { return nil }
        return PyOwned(PyCMethod_New(definition, capsule.pointer, nil, nil))
    }

    /// Sets a Python exception of `type` with `message`; returns nil for the hook to return.
    static func raise(_ type: PyPointer, _ message: String) -> PyPointer? {
        PyErr_SetString(type, message)
        return nil
    }
}

/// A capsule that keeps a Swift object alive as long as Python holds it: the `self` of keel's builtins
/// (`PyClosure`, `StartResponse`), released by the capsule's destructor. Call with the GIL held.
enum SwiftCapsule {
    nonisolated(unsafe) private static let name = UnsafePointer(strdup("keel.object")!)

    static func make(retaining object: AnyObject) -> PyOwned? {
        let retained = Unmanaged.passRetained(object).toOpaque()
        guard
            let capsule = PyOwned(
                PyCapsule_New(retained, name) { capsule in
                    guard let capsule, let raw = PyCapsule_GetPointer(capsule, SwiftCapsule.name) else { return }
                    Unmanaged<AnyObject>.fromOpaque(raw).release()
                })
        else {
            Unmanaged<AnyObject>.fromOpaque(retained).release()
            return nil
        }
        return capsule
    }

    /// The object a capsule made by `make` holds, if it is a `T`.
    static func object<T: AnyObject>(of capsule: PyPointer?, as type: T.Type) -> T? {
        guard let capsule, let raw = PyCapsule_GetPointer(capsule, name) else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? T
    }
}
