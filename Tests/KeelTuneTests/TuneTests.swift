import Testing

@testable import KeelTune

@Suite struct TuneScaffoldTests {
    @Test func exists() { _ = Tune.self }
}
