import CPython
import Dispatch
import KeelApp
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A Python app on a loop of its own: an ASGI app on asyncio (or uvloop), or a WSGI app in gevent's greenlets. The
/// loop runs on one thread for the worker's life, holding the GIL except while it waits for I/O; the worker's I/O
/// thread posts requests to `inbox` and never takes the GIL.
public final class AsyncPythonApp: AsyncApp, @unchecked Sendable {
    enum Kind {
        case asgi(loop: String)
        case gevent
    }

    let kind: Kind
    let app: PythonObject
    let driver: PythonObject
    let support: SupportObjects
    let inbox: AsyncInbox
    /// ASGI scopes, or gevent's WSGI environs.
    private let scopes: ScopeBuilder?
    private let environs: EnvironBuilder?
    private let startup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let startupFailure = Mutex<AppLoadError?>(nil)

    init(kind: Kind, app: PythonObject, driver: PythonObject, support: SupportObjects, configuration: WSGIConfiguration)
        throws(AppLoadError)
    {
        self.kind = kind
        self.app = app
        self.driver = driver
        self.support = support
        inbox = try AsyncInbox()
        switch kind {
        case .asgi:
            scopes = ScopeBuilder()
            environs = nil
        case .gevent:
            scopes = nil
            // gunicorn's choice for its gevent worker: requests run concurrently, so multithread is true.
            environs = EnvironBuilder(support: support, multithread: true, multiprocess: configuration.multiprocess)
        }
    }

    /// The scope or environ of a new request (GIL held), or nil with a Python exception set.
    func requestObject(_ exchange: AsyncExchange) -> PyOwned? {
        if let scopes { return scopes.make(for: exchange.request, webSocket: exchange.isWebSocket) }
        return environs?.make(for: exchange.request).map { PyOwned(owning: keel_py_new_ref($0.pointer)) }
    }

    public func startServing() throws(AppLoadError) {
        AsyncBridge.app = self
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            let app = Unmanaged<AsyncPythonApp>.fromOpaque(raw!).takeRetainedValue()
            app.runLoop()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        guard started == 0 else { throw AppLoadError("cannot start the app's loop thread") }
        pthread_detach(thread)
        startup.wait()
        if let failure = startupFailure.withLock({ $0 }) { throw failure }
    }

    /// The loop thread's whole life: the driver's serve function returns after the app's shutdown.
    private func runLoop() {
        GIL.with {
            // serve_asgi(app, wake_fd, loop_kind) or serve_gevent(app, wake_fd).
            let name: String
            var extra: PyPointer?
            switch kind {
            case .asgi(let loop):
                name = "serve_asgi"
                extra = Py.string(loop)!.take()
            case .gevent:
                name = "serve_gevent"
            }
            let args = PyTuple_New(extra == nil ? 2 : 3)!
            PyTuple_SetItem(args, 0, keel_py_new_ref(app.pointer))
            PyTuple_SetItem(args, 1, PyLong_FromLong(Int(inbox.fd)))
            if let extra { PyTuple_SetItem(args, 2, extra) }
            defer { Py_DecRef(args) }
            guard let serve = Py.attribute(driver.pointer, name), PyOwned(PyObject_CallObject(serve.pointer, args)) != nil
            else {
                let text = Py.takeErrorText(formatter: support.formatException.pointer) ?? "unknown error"
                ErrorLog.sink?("the app's loop ended with an error:\n\(text)")
                started(failure: AppLoadError("the app's loop failed: \(text.split(separator: "\n").last ?? "")", details: text))
                return
            }
        }
        // A loop that ends without being asked to (an error in the driver) would leave requests unanswered:
        // the worker goes, and the master starts another.
        if !stopRequested.load(ordering: .acquiring) && reportedStart.load(ordering: .acquiring)
            && startupFailure.withLock({ $0 }) == nil
        {
            ErrorLog.sink?("the app's loop stopped while the worker was serving: exiting so the master replaces it")
            _exit(1)
        }
        stopped.signal()
    }

    private let stopRequested = Atomic<Bool>(false)

    /// The driver's `K.started(None | (summary, details))`, on the loop thread.
    func started(_ outcome: PyPointer?) {
        guard let outcome, outcome != Py.none, keel_py_tuple_check(outcome) != 0, keel_py_tuple_size(outcome) == 2 else {
            return started(failure: nil)
        }
        let summary = Py.text(keel_py_tuple_item(outcome, 0)) ?? "the app's start-up failed"
        let details = Py.text(keel_py_tuple_item(outcome, 1)) ?? ""
        started(failure: AppLoadError(summary, details: details))
    }

    private let reportedStart = Atomic<Bool>(false)

    private func started(failure: AppLoadError?) {
        // Once: a loop that fails after start-up must not signal it again.
        guard !reportedStart.exchange(true, ordering: .acquiringAndReleasing) else { return }
        startupFailure.withLock { $0 = failure }
        startup.signal()
    }

    public func start(_ exchange: AsyncExchange) {
        let inbox = self.inbox
        exchange.setNotify { exchange, event in inbox.post(.event(exchange, event)) }
        inbox.post(.event(exchange, .start))
    }

    public func stopServing(withinSeconds seconds: Int) {
        stopRequested.store(true, ordering: .releasing)
        inbox.post(.stop)
        _ = stopped.wait(timeout: .now() + .seconds(seconds))
    }

    private let dumped = DispatchSemaphore(value: 0)

    /// The loop is asked to write its requests' coroutine (or greenlet) stacks, which it can while only a request
    /// awaits too long; a loop blocked by sync code cannot, so after a second every thread's stack is dumped anyway
    /// (faulthandler, without the GIL), which shows the blocking frame. Posting takes the inbox's lock, which no app
    /// code holds.
    public func reportStuckThreads() {
        inbox.post(.dumpStacks)
        _ = dumped.wait(timeout: .now() + .seconds(1))
        raise(WSGIHandler.stackDumpSignal)
    }

    func stacksDumped() { dumped.signal() }
}
