import KeelSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The child side of keel's tie to its pools: read once, removed, and a parent already gone is told apart.
@Suite(.serialized) struct ParentTieTests {
    @Test func noVariableMeansNoTie() {
        unsetenv(ParentTie.variable)
        #expect(ParentTie.tieFromEnvironment() == .untied)
    }

    @Test func theVariableIsReadOnceAndRemoved() {
        setenv(ParentTie.variable, String(getppid()), 1)
        #expect(ParentTie.tieFromEnvironment() == .tied(parent: getppid()))
        ParentTie.untie()  // the test process must not die with whatever thread of its parent started it
        #expect(getenv(ParentTie.variable) == nil)
        #expect(ParentTie.tieFromEnvironment() == .untied)
    }

    @Test func aParentThatIsNotOursIsGone() {
        setenv(ParentTie.variable, "2147483000", 1)
        #expect(ParentTie.tieFromEnvironment() == .parentGone(parent: 2_147_483_000))
        ParentTie.untie()
        setenv(ParentTie.variable, "nonsense", 1)
        #expect(ParentTie.tieFromEnvironment() == .untied)
    }

    @Test func theEntryNamesThisProcess() {
        #expect(ParentTie.environmentEntry == "KEEL_PARENT_PID=\(getpid())")
    }
}
