import CPython

typealias PyPointer = UnsafeMutablePointer<PyObject>

/// One strong reference to a Python object that outlives a GIL scope (the app callable, a response
/// iterator kept while the body streams). `deinit` takes the GIL before dropping the reference, so
/// it is safe on whatever thread releases the last Swift reference.
final class PythonObject: @unchecked Sendable {
    let pointer: PyPointer

    /// Takes over a new (owned) reference.
    init(owned pointer: PyPointer) { self.pointer = pointer }

    /// Adds a reference to a borrowed one. Call with the GIL held.
    init(borrowed pointer: PyPointer) {
        Py_IncRef(pointer)
        self.pointer = pointer
    }

    deinit {
        let pointer = self.pointer
        GIL.with { Py_DecRef(pointer) }
    }
}

/// A reference owned within one GIL scope: dropped (DECREF) when the scope ends, so a Python object
/// made per request cannot leak on an early return. Only used while the GIL is held.
struct PyOwned: ~Copyable {
    let pointer: PyPointer

    init(owning pointer: PyPointer) { self.pointer = pointer }

    /// nil when the C-API call failed (a Python exception is then set).
    init?(_ pointer: PyPointer?) {
        guard let pointer else { return nil }
        self.pointer = pointer
    }

    /// Gives the reference away (to a call that steals it, or to a PythonObject).
    consuming func take() -> PyPointer {
        let pointer = self.pointer
        discard self
        return pointer
    }

    deinit { Py_DecRef(pointer) }
}

/// Conversions between Swift and Python values. Call with the GIL held.
enum Py {
    static var none: PyPointer { keel_py_none() }

    /// A str from UTF-8 text.
    static func string(_ text: String) -> PyOwned? {
        var text = text
        let made: PyPointer? = text.withUTF8 { utf8 in
            PyUnicode_DecodeUTF8(
                utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, utf8.count,
                "surrogateescape")
        }
        return PyOwned(made)
    }

    /// A str holding each byte of `text`'s UTF-8 as one code point: PEP 3333's "bytes as latin-1".
    static func latin1(_ text: String) -> PyOwned? {
        var text = text
        let made: PyPointer? = text.withUTF8 { utf8 in
            PyUnicode_DecodeLatin1(
                utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, utf8.count, nil)
        }
        return PyOwned(made)
    }

    /// Swift text of a str (nil if `object` is not a str).
    static func text(_ object: PyPointer) -> String? {
        guard keel_py_unicode_check(object) != 0 else { return nil }
        var size = 0
        guard let utf8 = PyUnicode_AsUTF8AndSize(object, &size) else {
            PyErr_Clear()
            return nil
        }
        return String(decoding: UnsafeRawBufferPointer(start: utf8, count: size), as: UTF8.self)
    }

    /// The bytes a latin-1 str stands for, as Swift text (headers: PEP 3333 requires latin-1 strs).
    static func latin1Text(_ object: PyPointer) -> String? {
        guard let encoded = PyOwned(PyUnicode_AsLatin1String(object)) else {
            PyErr_Clear()
            return nil
        }
        let count = keel_py_bytes_size(encoded.pointer)
        let base = keel_py_bytes_data(encoded.pointer)!
        return String(decoding: UnsafeRawBufferPointer(start: base, count: count), as: UTF8.self)
    }

    static func attribute(_ object: PyPointer, _ name: String) -> PyOwned? {
        PyOwned(PyObject_GetAttrString(object, name))
    }

    /// The str attribute `name` of `object` as Swift text (nil, error cleared, if missing or not a str).
    static func textAttribute(_ object: PyPointer, _ name: String) -> String? {
        guard let value = attribute(object, name) else {
            PyErr_Clear()
            return nil
        }
        return text(value.pointer)
    }

    /// Sets `dict[key] = value` (a new reference dropped after the set).
    static func set(_ dict: PyPointer, _ key: String, _ value: consuming PyOwned) {
        PyDict_SetItemString(dict, key, value.pointer)
    }

    /// The pending Python exception as a traceback text, cleared (nil if none is set).
    static func takeErrorText(formatter: PyPointer?) -> String? {
        guard let raised = takeException() else { return nil }
        return describe(exception: raised, formatter: formatter)
    }

    /// The pending exception as one owned object with its traceback attached, cleared (3.11 has no
    /// PyErr_GetRaisedException).
    static func takeException() -> PyPointer? {
        var type: PyPointer?
        var value: PyPointer?
        var traceback: PyPointer?
        PyErr_Fetch(&type, &value, &traceback)
        guard type != nil else { return nil }
        PyErr_NormalizeException(&type, &value, &traceback)
        if let value, let traceback { PyException_SetTraceback(value, traceback) }
        if let type { Py_DecRef(type) }
        if let traceback { Py_DecRef(traceback) }
        if let value { return value }
        return nil
    }

    /// A traceback text of an owned exception object, consumed.
    static func describe(exception raised: PyPointer, formatter: PyPointer?) -> String {
        let exception = PyOwned(owning: raised)
        if let formatter, let text = PyOwned(keel_py_call1(formatter, exception.pointer)), let result = Py.text(text.pointer) {
            return result
        }
        PyErr_Clear()
        if let repr = PyOwned(PyObject_Str(exception.pointer)), let text = Py.text(repr.pointer) {
            return "\(String(cString: keel_py_type_name(exception.pointer))): \(text)"
        }
        PyErr_Clear()
        return String(cString: keel_py_type_name(exception.pointer))
    }
}
