import CPython

/// Taking and releasing the GIL from the worker's threads. Each thread keeps one Python thread state
/// for its whole life (made on first use), so a request costs a lock hand-off, not a state allocation,
/// and the app's thread-locals survive between requests as they do under uWSGI.
enum GIL {
    /// Runs `body` holding the GIL; reentrant (a thread already holding it just runs `body`).
    static func with<T>(_ body: () throws -> T) rethrows -> T {
        if PyGILState_GetThisThreadState() == nil {
            // First Python work on this thread: make its state and keep it (the counter stays at 1).
            _ = PyGILState_Ensure()
            _ = PyEval_SaveThread()
        }
        let state = PyGILState_Ensure()
        defer { PyGILState_Release(state) }
        return try body()
    }

    /// Runs `body` (Swift I/O: socket writes, waits) with the GIL released, so other threads run Python.
    static func released<T>(_ body: () throws -> T) rethrows -> T {
        let saved = PyEval_SaveThread()
        defer { PyEval_RestoreThread(saved) }
        return try body()
    }
}
