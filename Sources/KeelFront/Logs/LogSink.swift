#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// One log destination (a file opened for append, or stdout/stderr), reopenable on USR1 so logrotate can move it.
/// Writes are whole lines with one `write(2)` each, so lines from several threads never interleave.
public final class LogSink: Sendable {
    public enum Destination: Sendable, Equatable {
        case standardOutput
        case standardError
        case file(String)
    }

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    let destination: Destination
    private let fd: NIOLockedValueBox<Int32>

    public init(_ destination: Destination) throws(OpenError) {
        self.destination = destination
        self.fd = NIOLockedValueBox(try Self.open(destination))
    }

    /// "-" means stdout for an access log and stderr for an error log, as in many servers' flags.
    public convenience init(path: String, dashMeans: Destination) throws(OpenError) {
        try self.init(path == "-" ? dashMeans : .file(path))
    }

    deinit {
        let descriptor = fd.withLockedValue { $0 }
        if case .file = destination { close(descriptor) }
    }

    private static func open(_ destination: Destination) throws(OpenError) -> Int32 {
        switch destination {
        case .standardOutput: return STDOUT_FILENO
        case .standardError: return STDERR_FILENO
        case .file(let path):
            let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw OpenError(description: "cannot open log file \(path): \(String(cString: strerror(errno))) (check the directory exists and is writable)")
            }
            return descriptor
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        fd.withLockedValue { descriptor in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // a full disk must not take the server down; the line is lost
                }
                offset += written
            }
        }
    }

    func write(_ line: String) {
        var line = line
        line.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// Reopens a file destination (after logrotate renamed it); a failure keeps the old descriptor.
    public func reopen() throws(OpenError) {
        guard case .file = destination else { return }
        let fresh = try Self.open(destination)
        let old = fd.withLockedValue { current in
            defer { current = fresh }
            return current
        }
        close(old)
    }
}
