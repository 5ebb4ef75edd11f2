import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// INT and TERM during a run: the handler only records the signal; the run loop sees it, stops the pool it
/// started, writes what it measured, and exits non-zero.
public enum TuneSignals {
    static let received = Atomic<Int32>(0)

    public static func install() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber) { number in TuneSignals.received.store(number, ordering: .relaxed) }
        }
    }

    public static var pending: Int32 { received.load(ordering: .relaxed) }
}
