import Logging
import NIOConcurrencyHelpers
import Synchronization

/// keel's error log through swift-log: nginx-style lines ("2026/11/24 10:00:00 [error] message") to stderr or a
/// file given by `[log] error`, with the level from `[log] level`.
public enum FrontLog {
    private static let sinkBox = NIOLockedValueBox<LogSink?>(nil)

    /// The logger every part of keel uses; its handler looks up the current sink, so USR1/HUP can swap it.
    static let logger = Logger(label: "keel") { _ in ErrorLogHandler() }

    /// Points the error log at `sink` (stderr when nil) with `level`; called at start and on HUP.
    static func configure(sink: LogSink?, level: Logger.Level) {
        sinkBox.withLockedValue { $0 = sink }
        ErrorLogHandler.setLevel(level)
    }

    static func reopen() {
        try? sinkBox.withLockedValue { $0 }?.reopen()
    }

    static func error(_ message: @autoclosure () -> String) { logger.error("\(message())") }
    static func warning(_ message: @autoclosure () -> String) { logger.warning("\(message())") }
    static func notice(_ message: @autoclosure () -> String) { logger.notice("\(message())") }
    static func info(_ message: @autoclosure () -> String) { logger.info("\(message())") }
    static func debug(_ message: @autoclosure () -> String) { logger.debug("\(message())") }

    struct ErrorLogHandler: LogHandler {
        /// Read on every log call, also those below the level: an atomic, not a lock.
        private static let levelIndex = Atomic<Int>(Logger.Level.allCases.firstIndex(of: .info)!)
        static let fallback = try! LogSink(.standardError)

        static func setLevel(_ level: Logger.Level) {
            levelIndex.store(Logger.Level.allCases.firstIndex(of: level)!, ordering: .relaxed)
        }

        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level {
            get { Logger.Level.allCases[Self.levelIndex.load(ordering: .relaxed)] }
            set { Self.setLevel(newValue) }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let sink = FrontLog.sinkBox.withLockedValue { $0 } ?? Self.fallback
            sink.write("\(LogClock.shared.errorLogStamp()) [\(event.level.nginxName)] keel: \(event.message)\n")
        }
    }
}

extension Logger.Level {
    /// nginx's level words, so log filters written for nginx keep working.
    var nginxName: String {
        switch self {
        case .trace, .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warn"
        case .error: "error"
        case .critical: "crit"
        }
    }

    init?(configName: String) {
        switch configName {
        case "debug": self = .debug
        case "info": self = .info
        case "notice": self = .notice
        case "warning", "warn": self = .warning
        case "error": self = .error
        default: return nil
        }
    }
}
