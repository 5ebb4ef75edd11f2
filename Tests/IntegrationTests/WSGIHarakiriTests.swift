import Foundation
import Testing

/// --harakiri on a WSGI app shows where the app was stuck (issue 15): before the worker exits, its log has the
/// request line and every thread's Python stack, even when the stuck thread holds the GIL.
@Suite("WSGI harakiri stacks", .timeLimit(.minutes(2)))
struct WSGIHarakiriTests {
    /// Sends `path` and waits for the worker's report: the harakiri line with the request, then the named frame.
    static func expectReport(path: String, frame: String, threads: Int) throws {
        let wsgi = try WSGIPool("stuck", ["--harakiri", "1", "--threads", "\(threads)"])
        let first = wsgi.pool.workers
        let socket = try TestSocket(tcpPort: wsgi.port)
        try socket.write("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        try Harness.waitUntil("the worker's harakiri report", seconds: 15) {
            wsgi.log.contains("harakiri: a request ran over --harakiri (running \"GET \(path) HTTP/1.1\")")
                && wsgi.log.contains("in \(frame)")
        }
        let log = wsgi.log
        #expect(log.contains("File \"\(wsgi.appDirectory)/\(WSGITestApps.module).py\""), "frames name the app's file")
        #expect(log.contains("in stuck\n"), "the app's own frame is under the stuck function")
        try Harness.waitUntil("the replacement") { wsgi.pool.workers.count == 1 && wsgi.pool.workers != first }
        try wsgi.pool.stop()
    }

    @Test(arguments: [1, 2]) func aSleepingRequestShowsItsStack(threads: Int) throws {
        try Self.expectReport(path: "/report", frame: "stuck_in_report", threads: threads)
    }

    @Test func aRequestHoldingTheGILStillShowsItsStack() throws {
        try Self.expectReport(path: "/gil", frame: "stuck_holding_the_gil", threads: 1)
    }
}
