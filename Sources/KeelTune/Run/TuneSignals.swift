import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// INT and TERM during a run: the handler only records the signal; the run loop sees it, stops the pool it
/// started, writes what it measured, and exits non-zero.
public enum TuneSignals {
    static let received = Atomic<Int32>(0)

    /// Call before any thread starts: the mask is inherited, and a parent (a test runner, a supervisor) may have
    /// started tune with INT and TERM blocked.
    public static func install() {
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for signalNumber in [SIGINT, SIGTERM] {
            sigaddset(&unblock, signalNumber)
            signal(signalNumber) { number in TuneSignals.received.store(number, ordering: .relaxed) }
        }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }

    public static var pending: Int32 { received.load(ordering: .relaxed) }
}
