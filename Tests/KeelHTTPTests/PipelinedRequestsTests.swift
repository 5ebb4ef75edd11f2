import KeelHTTP
import NIOCore
import NIOHTTP1
import Testing

/// Pipelined requests held for their turn, without sockets. Both servers drive this state machine:
/// FrontProxyTests and HTTPSocketTests run it over real connections.
@Suite struct PipelinedRequestsTests {
    static func parts(_ uri: String, body: Bool = false) -> [HTTPServerRequestPart] {
        var parts: [HTTPServerRequestPart] = [.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri))]
        if body { parts.append(.body(ByteBuffer(string: "x"))) }
        parts.append(.end(nil))
        return parts
    }

    static func describe(_ part: HTTPServerRequestPart) -> String {
        switch part {
        case .head(let head): "head \(head.uri)"
        case .body: "body"
        case .end: "end"
        }
    }

    /// Feeds parts, returning those the proxy takes at once.
    static func arrive(_ parts: [HTTPServerRequestPart], into pipeline: inout PipelinedRequests) -> [String] {
        parts.filter { pipeline.arrived($0) }.map(describe)
    }

    static func drain(_ pipeline: inout PipelinedRequests) -> [String] {
        var taken: [String] = []
        while let part = pipeline.nextDeliverable() { taken.append(describe(part)) }
        return taken
    }

    @Test func aClientWaitingForItsAnswerIsNeverPausedMidResponse() {
        var pipeline = PipelinedRequests()
        let got1 = Self.arrive(Self.parts("/a", body: true), into: &pipeline)
        #expect(got1 == ["head /a", "body", "end"])
        let got2 = pipeline.allowsRead()
        #expect(got2, "the socket is read while the answer is pending")
        pipeline.responseEnded()
        let got3 = Self.drain(&pipeline)
        #expect(got3.isEmpty)
    }

    @Test func aPipelinedRequestWaitsForTheAnswerBeforeIt() {
        var pipeline = PipelinedRequests()
        let got4 = Self.arrive(Self.parts("/a"), into: &pipeline)
        #expect(got4 == ["head /a", "end"])
        let got5 = Self.arrive(Self.parts("/b", body: true), into: &pipeline)
        #expect(got5.isEmpty)
        pipeline.responseEnded()
        let got6 = Self.drain(&pipeline)
        #expect(got6 == ["head /b", "body", "end"])
        pipeline.responseEnded()
        let got7 = Self.drain(&pipeline)
        #expect(got7.isEmpty)
    }

    @Test func theBodyOfTheCurrentRequestPassesEvenAfterAnEarlyAnswer() {
        // A 413 answered before the body: the rest of that body still reaches the proxy (which drops it).
        var pipeline = PipelinedRequests()
        let head = pipeline.arrived(.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/big")))
        #expect(head)
        pipeline.responseEnded()
        let body = pipeline.arrived(.body(ByteBuffer(string: "x")))
        let end = pipeline.arrived(.end(nil))
        #expect(body && end)
    }

    @Test func readsPauseOnlyWhenTooManyRequestsQueueAndResumeAsTheyAreAnswered() {
        var pipeline = PipelinedRequests()
        var taken: [String] = []
        for index in 0...PipelinedRequests.maxQueuedRequests {
            taken += Self.arrive(Self.parts("/\(index)"), into: &pipeline)
        }
        let got11 = pipeline.allowsRead()
        #expect(!got11, "\(PipelinedRequests.maxQueuedRequests) queued: reading pauses")
        let got12 = pipeline.owesRead()
        #expect(!got12, "still full")
        pipeline.responseEnded()
        taken += Self.drain(&pipeline)
        let got13 = pipeline.owesRead()
        #expect(got13, "one answered: the withheld read is owed")
        let got14 = pipeline.owesRead()
        #expect(!got14, "owed once")
        for _ in 0..<PipelinedRequests.maxQueuedRequests {
            pipeline.responseEnded()
            taken += Self.drain(&pipeline)
        }
        #expect(taken.filter { $0.hasPrefix("head") } == (0...PipelinedRequests.maxQueuedRequests).map { "head /\($0)" })
        let got15 = pipeline.allowsRead()
        #expect(got15)
    }

    @Test func aGracefulStopClosesAnIdleConnectionAtOnceAndABusyOneAfterItsAnswer() {
        var idle = PipelinedRequests()
        let got16 = idle.quiesce()
        #expect(got16 == .closeNow)

        var finished = PipelinedRequests()
        _ = Self.arrive(Self.parts("/a"), into: &finished)
        finished.responseEnded()
        let got17 = finished.quiesce()
        #expect(got17 == .closeNow, "answered and nothing queued: idle again")

        var busy = PipelinedRequests()
        _ = Self.arrive(Self.parts("/a") + Self.parts("/b"), into: &busy)
        let got18 = busy.quiesce()
        #expect(got18 == .closeAfterResponse)
        busy.responseEnded()
        #expect(busy.quiescing)
        let got19 = Self.drain(&busy)
        #expect(got19.isEmpty, "the queued request is dropped, not answered half")
    }
}
