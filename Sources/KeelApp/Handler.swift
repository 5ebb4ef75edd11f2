/// A synchronous app: runs on one of the worker's `--threads` threads (or inline on the I/O thread
/// when there is one thread) and may block it, as a WSGI app does.
public protocol Handler: Sendable {
    func handle(_ request: Request) throws -> Response
    /// True if the handler reads `request.bodyReader` where the connection offers one (WSGI's
    /// `wsgi.input`); false has the body read in full into `request.body` first.
    var streamsRequestBody: Bool { get }
    /// Writes where the app's threads are (for --harakiri) to the log (stderr). Called on the worker's main thread
    /// while app threads may be stuck holding any lock: it must take none (no GIL, no allocator-heavy work).
    func reportStuckThreads()
}

extension Handler {
    public var streamsRequestBody: Bool { false }
    public func reportStuckThreads() {}
}

/// A handler made from a closure, for tests and small apps.
public struct ClosureHandler: Handler {
    let body: @Sendable (Request) throws -> Response
    public init(_ body: @escaping @Sendable (Request) throws -> Response) { self.body = body }
    public func handle(_ request: Request) throws -> Response { try body(request) }
}

/// An app that cannot be loaded in a worker (a WSGI import error, a missing callable): the pool
/// stops with exit code 1 instead of respawning workers that would fail the same way.
public struct AppLoadError: Error, Sendable, CustomStringConvertible {
    /// One line naming the flag and what to fix.
    public var summary: String
    /// The Python traceback, or empty.
    public var details: String
    public init(_ summary: String, details: String = "") {
        self.summary = summary
        self.details = details
    }
    public var description: String { summary }
}
