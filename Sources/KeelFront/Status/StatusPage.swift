import NIOCore
import NIOHTTP1
import Synchronization

/// `[status]` on the request path: the page and its JSON at their two paths, 403 for clients outside `allow`, and
/// nil for every other path (the request goes on to the router). The data is the board's last refresh, so serving
/// it never waits for a pool.
struct StatusPage: Sendable {
    let configuration: FrontConfiguration.Status
    let board: StatusBoard
    private let jsonPath: String

    init(configuration: FrontConfiguration.Status, board: StatusBoard) {
        self.configuration = configuration
        self.board = board
        self.jsonPath = configuration.jsonPath
    }

    func reply(path: Substring, method: HTTPMethod, client: String) -> Reply? {
        let isPage = path == configuration.path
        guard isPage || path == jsonPath else { return nil }
        guard configuration.allow.contains(where: { $0.contains(client) }) else {
            return .plain(.forbidden, "403 Forbidden\n")
        }
        guard method == .GET || method == .HEAD else {
            var reply = Reply.plain(.methodNotAllowed, "405 Method Not Allowed\n")
            reply.headers.add(name: "Allow", value: "GET, HEAD")
            return reply
        }
        var reply =
            isPage
            ? Reply.text(.ok, StatusPageHTML.page(jsonPath: jsonPath), contentType: "text/html; charset=utf-8")
            : Reply.text(.ok, board.document, contentType: "application/json")
        reply.headers.add(name: "Cache-Control", value: "no-store")
        return reply
    }
}

/// The status page's data as of the last refresh (once a second, off the event loops).
final class StatusBoard: Sendable {
    private let latest = Mutex<String>("{\"keel\": null, \"pools\": []}\n")

    var document: String { latest.withLock { $0 } }

    func publish(_ document: String) {
        latest.withLock { $0 = document }
    }
}
