import CPython

/// A Python type whose instances each own one Swift object: `wsgi.input` (`InputObject`) and `wsgi.errors`
/// (`ErrorsObject`). Made with `PyType_FromSpec`, so the same build serves every CPython; the Swift object is
/// released when Python frees the instance. Call with the GIL held.
struct SwiftObjectType {
    let type: PyPointer

    typealias Method = (name: String, function: PyCFunction, flags: Int32)

    /// `iterate`: `tp_iternext` (the type is its own iterator). The definitions live as long as the process.
    init?(name: String, methods: [Method], iterate: (@convention(c) (PyPointer?) -> PyPointer?)? = nil) {
        let table = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: methods.count + 1)
        for (index, method) in methods.enumerated() {
            table[index] = PyMethodDef(
                ml_name: UnsafePointer(strdup(method.name)), ml_meth: method.function, ml_flags: method.flags, ml_doc: nil)
        }
        table[methods.count] = PyMethodDef(ml_name: nil, ml_meth: nil, ml_flags: 0, ml_doc: nil)
        let dealloc: @convention(c) (PyPointer?) -> Void = { object in
            guard let object else { return }
            if let raw = keel_swift_object_state(object).pointee { Unmanaged<AnyObject>.fromOpaque(raw).release() }
            let type = keel_py_type_of(object)
            PyObject_Free(object)
            Py_DecRef(type)  // instances of heap types hold their type
        }
        let itself: @convention(c) (PyPointer?) -> PyPointer? = { object in keel_py_new_ref(object) }
        var slots = [
            PyType_Slot(slot: Py_tp_dealloc, pfunc: unsafeBitCast(dealloc, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: Py_tp_methods, pfunc: UnsafeMutableRawPointer(table)),
        ]
        if let iterate {
            slots.append(PyType_Slot(slot: Py_tp_iter, pfunc: unsafeBitCast(itself, to: UnsafeMutableRawPointer.self)))
            slots.append(PyType_Slot(slot: Py_tp_iternext, pfunc: unsafeBitCast(iterate, to: UnsafeMutableRawPointer.self)))
        }
        slots.append(PyType_Slot(slot: 0, pfunc: nil))
        let slotTable = UnsafeMutablePointer<PyType_Slot>.allocate(capacity: slots.count)
        slotTable.initialize(from: slots, count: slots.count)
        let spec = UnsafeMutablePointer<PyType_Spec>.allocate(capacity: 1)
        spec.initialize(
            to: PyType_Spec(
                name: UnsafePointer(strdup(name)), basicsize: keel_swift_object_basic_size(), itemsize: 0,
                flags: UInt32(Py_TPFLAGS_DEFAULT), slots: slotTable))
        guard let type = PyType_FromSpec(spec) else { return nil }
        self.type = type
    }

    /// A new instance owning `state`.
    func make(_ state: AnyObject) -> PyOwned? {
        let typeObject = UnsafeMutableRawPointer(type).assumingMemoryBound(to: PyTypeObject.self)
        guard let object = PyType_GenericAlloc(typeObject, 0) else { return nil }
        keel_swift_object_state(object).pointee = Unmanaged.passRetained(state).toOpaque()
        return PyOwned(object)
    }

    /// The Swift object of an instance; nil with `ValueError` set for an instance Python made without one.
    static func state<State: AnyObject>(of object: PyPointer?, as _: State.Type) -> State? {
        guard let object, let raw = keel_swift_object_state(object).pointee else {
            PyErr_SetString(keel_py_exc_value_error(), "this object is not open")
            return nil
        }
        return Unmanaged<State>.fromOpaque(raw).takeUnretainedValue()
    }
}
