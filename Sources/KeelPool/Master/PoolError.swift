/// Errors a user can cause when starting the pool; each description is one line that says what to fix.
public struct PoolError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }

    static func errno(_ what: String, _ code: Int32) -> PoolError {
        PoolError("\(what): \(SystemError.message(code)) (errno \(code))")
    }
}

#if canImport(Glibc)
import Glibc
#endif

enum SystemError {
    static func message(_ code: Int32) -> String { String(cString: strerror(code)) }
}
