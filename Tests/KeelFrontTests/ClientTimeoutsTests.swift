import NIOCore
import Testing

@testable import KeelFront

/// nginx's client timeouts as a state machine on its own, without sockets. FrontLimitsTests runs the same rules
/// over real connections.
@Suite struct ClientTimeoutsTests {
    static func timeouts() -> ClientTimeouts {
        var limits = FrontConfiguration.Limits()
        limits.clientHeaderTimeout = .seconds(1)
        limits.clientBodyTimeout = .seconds(2)
        limits.keepaliveTimeout = .seconds(3)
        limits.sendTimeout = .seconds(4)
        return ClientTimeouts(limits: limits)
    }

    @Test func anOpenedConnectionHasTheHeaderTimeoutForItsFirstHead() {
        var timeouts = Self.timeouts()
        let got20 = timeouts.connected()
        #expect(got20 == .arm(.seconds(1)))
        let got21 = timeouts.expired(unsentBytes: 0)
        #expect(got21 == .closeSilently, "nothing arrived: closed without a word, as nginx")
    }

    @Test func aPartialHeadTimesOutWith408() {
        var timeouts = Self.timeouts()
        _ = timeouts.connected()
        let got22 = timeouts.readComplete()
        #expect(got22 == .arm(.seconds(1)), "bytes without a whole head")
        let got23 = timeouts.expired(unsentBytes: 0)
        #expect(got23 == .headTimedOut)
    }

    @Test func aStalledBodyTimesOutAndEachBodyPartMovesTheDeadline() {
        var timeouts = Self.timeouts()
        let got24 = timeouts.receivedHead(hasBody: true)
        #expect(got24 == .arm(.seconds(2)))
        let got25 = timeouts.receivedBody()
        #expect(got25 == .arm(.seconds(2)))
        let got26 = timeouts.readComplete()
        #expect(got26 == .none, "mid-body reads do not start a head timeout")
        let got27 = timeouts.expired(unsentBytes: 0)
        #expect(got27 == .bodyTimedOut)
    }

    @Test func awaitingTheResponseNoClientTimeoutApplies() {
        var timeouts = Self.timeouts()
        let got28 = timeouts.receivedHead(hasBody: false)
        #expect(got28 == .cancel)
        let got29 = timeouts.expired(unsentBytes: 0)
        #expect(got29 == .none)
        let got30 = timeouts.receivedHead(hasBody: true)
        #expect(got30 == .arm(.seconds(2)))
        let got31 = timeouts.receivedEnd()
        #expect(got31 == .cancel)
        let got32 = timeouts.expired(unsentBytes: 0)
        #expect(got32 == .none)
    }

    @Test func afterTheAnswerKeepaliveTimeoutThenSendTimeoutOnceForAResponseStillLeaving() {
        var timeouts = Self.timeouts()
        _ = timeouts.receivedHead(hasBody: false)
        let got33 = timeouts.responseEnded()
        #expect(got33 == .arm(.seconds(3)))
        let got34 = timeouts.readComplete()
        #expect(got34 == .none, "the read that carried the answered request")
        let got35 = timeouts.expired(unsentBytes: 100)
        #expect(got35 == .rearm(.seconds(4)))
        let got36 = timeouts.expired(unsentBytes: 100)
        #expect(got36 == .closeSilently, "send_timeout is given once")
    }

    @Test func aPipelinedBodyIsJudgedOnlyOnceItsRequestIsCurrent() {
        var timeouts = Self.timeouts()
        _ = timeouts.receivedHead(hasBody: false)
        _ = timeouts.receivedHead(hasBody: true)
        let got37 = timeouts.expired(unsentBytes: 0)
        #expect(got37 == .rearm(.seconds(2)), "an earlier request is still being answered")
        let got38 = timeouts.responseEnded()
        #expect(got38 == .none, "a later request is still open")
        let got39 = timeouts.expired(unsentBytes: 0)
        #expect(got39 == .bodyTimedOut)
    }

    /// An HTTP/2 stream's request lasts until END_STREAM whatever its method: the body timeout starts at the read's
    /// end unless the end came in the same read (a GET's usual HEADERS), which then costs no timer at all.
    @Test func aStreamsRequestIsTimedUntilItsEndWhateverItsMethod() {
        var limits = FrontConfiguration.Limits()
        limits.clientBodyTimeout = .seconds(2)
        var whole = ClientTimeouts(limits: limits, isStream: true)
        #expect(whole.receivedHead(hasBody: false) == .none)
        #expect(whole.receivedEnd() == .cancel)
        #expect(whole.readComplete() == .none, "HEADERS with END_STREAM: no timer")

        var open = ClientTimeouts(limits: limits, isStream: true)
        #expect(open.receivedHead(hasBody: false) == .none)
        #expect(open.readComplete() == .arm(.seconds(2)), "HEADERS without END_STREAM: the body timeout")
        #expect(open.expired(unsentBytes: 0) == .bodyTimedOut)

        var posting = ClientTimeouts(limits: limits, isStream: true)
        _ = posting.receivedHead(hasBody: true)
        #expect(posting.receivedBody() == .arm(.seconds(2)))
        #expect(posting.readComplete() == .none, "a body part armed it already")
        #expect(posting.receivedEnd() == .cancel)
    }
}
