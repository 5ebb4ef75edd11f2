import NIOCore
import Testing

@testable import KeelFront

@Suite struct UpstreamGroupTests {
    static func group(_ count: Int, maxFails: Int = 1, failTimeout: TimeAmount = .seconds(10)) -> UpstreamGroup {
        UpstreamGroup(configuration: .init(
            name: "g", servers: (0..<count).map { .unix(path: "/s\($0)") }, maxFails: maxFails, failTimeout: failTimeout))
    }

    @Test func roundRobin() {
        let group = Self.group(3)
        #expect((0..<6).map { _ in group.pickServer()! } == [0, 1, 2, 0, 1, 2])
    }

    @Test func aFailedServerIsSkippedForFailTimeoutThenComesBack() {
        let group = Self.group(2, failTimeout: .seconds(10))
        let start = NIODeadline.now()
        #expect(group.recordFailure(0, now: start))
        #expect((0..<4).map { _ in group.pickServer(now: start + .seconds(1))! } == [1, 1, 1, 1])
        #expect(Set((0..<4).map { _ in group.pickServer(now: start + .seconds(11))! }) == [0, 1])
    }

    @Test func maxFailsCountsFailuresInARowAndSuccessResets() {
        let group = Self.group(2, maxFails: 3)
        #expect(!group.recordFailure(0))
        #expect(!group.recordFailure(0))
        group.recordSuccess(0)
        #expect(!group.recordFailure(0))
        #expect(!group.recordFailure(0))
        #expect(group.recordFailure(0))
        #expect(group.isDown(0))
    }

    @Test func maxFailsZeroNeverMarksDown() {
        let group = Self.group(2, maxFails: 0)
        for _ in 0..<5 { #expect(!group.recordFailure(0)) }
        #expect(!group.isDown(0))
    }

    @Test func aFailureWhileDownExtendsTheTimeOutButIsNotANewMark() {
        let group = Self.group(2, failTimeout: .seconds(10))
        let start = NIODeadline.now()
        #expect(group.recordFailure(0, now: start))
        #expect(!group.recordFailure(0, now: start + .seconds(2)), "already down: said once")
        #expect(group.isDown(0, now: start + .seconds(11)), "down until 10 s after the last failure")
        #expect(!group.isDown(0, now: start + .seconds(13)))
    }

    @Test func aGroupsOnlyServerIsNeverMarkedDown() {
        let group = Self.group(1)
        for _ in 0..<3 { #expect(!group.recordFailure(0)) }
        #expect(!group.isDown(0))
    }

    @Test func aRetryDoesNotTakeTheNextRequestsTurn() {
        let group = Self.group(2)
        #expect(group.pickServer() == 0)
        #expect(group.pickServer(excluding: 0) == 1, "the retry goes to the other server")
        #expect(group.pickServer() == 1, "the next request still gets its own turn, not the failed server again")
        #expect(group.pickServer() == 0)
    }

    @Test func whenAllAreDownTheSoonestBackIsTriedAndRetryAvoidsTheFailedOne() {
        let group = Self.group(2, failTimeout: .seconds(10))
        let start = NIODeadline.now()
        group.recordFailure(0, now: start)
        group.recordFailure(1, now: start + .seconds(5))
        #expect(group.pickServer(now: start + .seconds(6)) == 0)
        #expect(group.pickServer(excluding: 0, now: start + .seconds(6)) == 1)
        #expect(Self.group(1).pickServer(excluding: 0) == 0, "a single server is retried on itself")
    }
}
