// Thin wrappers of CPython macros and variadic calls Swift cannot import; no logic here.
#ifndef KEEL_CPYTHON_SHIM_H
#define KEEL_CPYTHON_SHIM_H

// SwiftGlibc is built without feature macros, but pyconfig.h defines _GNU_SOURCE and _XOPEN_SOURCE, under
// which glibc names fd_set's field differently: a clash with Glibc's copy that broke clean builds. Reading
// features.h and sys/select.h first fixes their shape to Glibc's (features.h is only read once).
#include <features.h>
#include <sys/select.h>
#include <sys/time.h>
#define PY_SSIZE_T_CLEAN
// By path, not through pkg-config: nothing that imports this module links libpython (see module.modulemap).
#include <python3.11/Python.h>

static inline PyObject *keel_py_none(void) { return Py_None; }
static inline PyObject *keel_py_true(void) { return Py_True; }
static inline PyObject *keel_py_false(void) { return Py_False; }
static inline PyObject *keel_py_exc_os_error(void) { return PyExc_OSError; }
static inline PyObject *keel_py_exc_runtime_error(void) { return PyExc_RuntimeError; }
static inline PyObject *keel_py_exc_type_error(void) { return PyExc_TypeError; }
static inline PyObject *keel_py_exc_value_error(void) { return PyExc_ValueError; }
static inline PyObject *keel_py_exc_overflow_error(void) { return PyExc_OverflowError; }
static inline PyObject *keel_py_type_of(PyObject *o) { return (PyObject *)Py_TYPE(o); }
static inline PyObject *keel_py_new_ref(PyObject *o) { Py_INCREF(o); return o; }
static inline PyObject *keel_py_exc_assertion_error(void) { return PyExc_AssertionError; }
static inline int keel_py_unicode_check_exact(PyObject *o) { return PyUnicode_CheckExact(o); }
static inline int keel_py_bytes_check_exact(PyObject *o) { return PyBytes_CheckExact(o); }
static inline int keel_py_is_true(PyObject *o) { return PyObject_IsTrue(o); }

static inline int keel_py_bytes_check(PyObject *o) { return PyBytes_Check(o); }
static inline int keel_py_unicode_check(PyObject *o) { return PyUnicode_Check(o); }
static inline int keel_py_list_check_exact(PyObject *o) { return PyList_CheckExact(o); }
static inline int keel_py_tuple_check_exact(PyObject *o) { return PyTuple_CheckExact(o); }
static inline int keel_py_tuple_check(PyObject *o) { return PyTuple_Check(o); }
static inline int keel_py_list_check(PyObject *o) { return PyList_Check(o); }

static inline Py_ssize_t keel_py_list_size(PyObject *o) { return PyList_GET_SIZE(o); }
static inline PyObject *keel_py_list_item(PyObject *o, Py_ssize_t i) { return PyList_GET_ITEM(o, i); }
static inline Py_ssize_t keel_py_tuple_size(PyObject *o) { return PyTuple_GET_SIZE(o); }
static inline PyObject *keel_py_tuple_item(PyObject *o, Py_ssize_t i) { return PyTuple_GET_ITEM(o, i); }
static inline char *keel_py_bytes_data(PyObject *o) { return PyBytes_AS_STRING(o); }
static inline Py_ssize_t keel_py_bytes_size(PyObject *o) { return PyBytes_GET_SIZE(o); }
static inline int keel_py_type_is(PyObject *o, PyObject *type) { return (PyObject *)Py_TYPE(o) == type; }
static inline const char *keel_py_type_name(PyObject *o) { return Py_TYPE(o)->tp_name; }

/// A module for PyInit_*: PyModuleDef_HEAD_INIT is a macro. `definition` must live as long as the process.
static inline PyObject *keel_py_module_create(PyModuleDef *definition, const char *name, PyMethodDef *methods) {
    PyModuleDef made = {PyModuleDef_HEAD_INIT, name, NULL, -1, methods, NULL, NULL, NULL, NULL};
    *definition = made;
    return PyModule_Create(definition);
}

/// Instances of keel's Swift-made types (wsgi.input, wsgi.errors): the object header and the Swift object owned.
typedef struct {
    PyObject_HEAD
    void *state;
} KeelSwiftObject;
static inline void **keel_swift_object_state(PyObject *o) { return &((KeelSwiftObject *)o)->state; }
static inline int keel_swift_object_basic_size(void) { return (int)sizeof(KeelSwiftObject); }

static inline PyObject *keel_py_call2(PyObject *callable, PyObject *a, PyObject *b) {
    return PyObject_CallFunctionObjArgs(callable, a, b, NULL);
}
static inline PyObject *keel_py_call1(PyObject *callable, PyObject *a) {
    return PyObject_CallFunctionObjArgs(callable, a, NULL);
}

#endif
