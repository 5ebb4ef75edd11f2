import CPython

/// A capsule that keeps a Swift object alive as long as Python holds it: the `self` of keel's builtins
/// (`StartResponse`'s start_response and write()), released by the capsule's destructor. Call with the GIL held.
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
