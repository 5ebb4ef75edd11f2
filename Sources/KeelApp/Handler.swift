/// A synchronous app: runs on one of the worker's `--threads` threads (or inline on the I/O thread
/// when there is one thread) and may block it, as a WSGI app does.
public protocol Handler: Sendable {
    func handle(_ request: Request) throws -> Response
}

/// A handler made from a closure, for tests and small apps.
public struct ClosureHandler: Handler {
    let body: @Sendable (Request) throws -> Response
    public init(_ body: @escaping @Sendable (Request) throws -> Response) { self.body = body }
    public func handle(_ request: Request) throws -> Response { try body(request) }
}
