#if canImport(Glibc)
import Glibc
#endif

/// A set of signals taken synchronously (blocked, then waited for), so no async signal handler runs.
struct SignalSet {
    private var signals = sigset_t()
    /// The signal numbers, for posix_spawn's reset-to-default list.
    let members: [Int32]

    init(_ signals: [Int32]) {
        self.members = signals
        sigemptyset(&self.signals)
        for signal in signals { sigaddset(&self.signals, signal) }
    }

    /// No SIGUSR1: Swift's crash backtracer uses it to pause threads, and a worker waiting for it would
    /// swallow it and freeze for half a minute on a crash. The master reaches workers with HUP instead.
    static let workerSignals = SignalSet([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR2, SIGTTIN, SIGTTOU])
    static let masterSignals = SignalSet([
        SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGPIPE,
    ])

    /// Blocks the signals in the calling thread; threads created later inherit the mask.
    func block() {
        var set = self.signals
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// The next pending signal, or nil after the timeout.
    func wait(timeoutMilliseconds: Int?) -> Int32? {
        var set = self.signals
        var info = siginfo_t()
        while true {
            let result: Int32
            if let ms = timeoutMilliseconds {
                var timeout = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
                result = sigtimedwait(&set, &info, &timeout)
            } else {
                result = sigwaitinfo(&set, &info)
            }
            if result > 0 { return result }
            if errno == EINTR { continue }
            return nil
        }
    }

    /// The set as a C value, for posix_spawnattr_setsigdefault.
    var raw: sigset_t { signals }
}

/// Signals the master sends its workers, named for what they mean there.
enum WorkerSignal {
    /// Leave: stop accepting, finish what is running, exit (the pool goes on).
    static let leave = SIGUSR2
    /// A request is over --harakiri: report and exit now (a WSGI worker will dump its Python stacks first).
    static let harakiri = SIGTTOU
    /// Reopen the --logto file.
    static let reopenLogs = SIGHUP
}
