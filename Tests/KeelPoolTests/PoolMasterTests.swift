import Testing

@testable import KeelPool

#if canImport(Glibc)
import Glibc
#endif

@Suite struct PoolMasterTests {
    /// Wait statuses as waitpid(2) reports them: exit code in bits 8–15, signal in bits 0–6, 0x80 = core dumped.
    @Test(
        arguments: [
            (0, "exited normally"),
            (3 << 8, "exited with code 3"),
            (1 << 8, "exited with code 1"),
            (255 << 8, "exited with code 255"),
            (SIGKILL, "killed by SIGKILL"),
            (SIGSEGV, "killed by SIGSEGV"),
            (SIGSEGV | 0x80, "killed by SIGSEGV"),
            (SIGABRT | 0x80, "killed by SIGABRT"),
            (SIGTERM, "killed by SIGTERM"),
            (SIGINT, "killed by SIGINT"),
            (SIGBUS, "killed by SIGBUS"),
            (SIGILL, "killed by SIGILL"),
            (SIGTRAP, "killed by SIGTRAP"),
            (SIGUSR1, "killed by signal \(SIGUSR1)"),
            (40, "killed by signal 40"),
        ] as [(Int32, String)])
    func describeExit(status: Int32, expected: String) {
        #expect(PoolMaster.describeExit(status) == expected)
    }
}
