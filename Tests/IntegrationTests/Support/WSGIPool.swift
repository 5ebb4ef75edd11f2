import Foundation

/// keel-pool serving one callable of the WSGI test apps module, with the module's temp directory.
final class WSGIPool: @unchecked Sendable {
    let appDirectory: String
    let pool: PoolUnderTest

    /// `readableByAll`: the app directory opened to every user, for workers that drop to `--uid nobody`.
    init(
        _ callable: String, http: Bool = true, uwsgi: Bool = false, _ arguments: [String] = [], readableByAll: Bool = false
    ) throws {
        appDirectory = try WSGITestApps.makeDirectory()
        if readableByAll { chmod(appDirectory, 0o755) }
        pool = try PoolUnderTest(
            http: http, uwsgi: uwsgi,
            ["--wsgi", "\(WSGITestApps.module):\(callable)", "--pythonpath", appDirectory] + arguments)
    }

    var port: Int { pool.httpPort! }
    var log: String { pool.log }

    /// Writes `count` test bytes to a file in the app directory and GETs `/f?path=FILE` on the pool's uwsgi or
    /// HTTP socket (for the file_wrapper apps).
    func fetchFile(named name: String, count: Int, seed: UInt64, uwsgi: Bool) throws -> (payload: [UInt8], reply: HTTPReply) {
        let path = appDirectory + "/" + name
        let payload = testBytes(count: count, seed: seed)
        try Data(payload).write(to: URL(fileURLWithPath: path))
        if uwsgi {
            let raw = try UWSGIClient.exchange(path: pool.socketPath!, vars: UWSGIClient.vars(uri: "/f?path=\(path)"))
            return (payload, try UWSGIClient.parse(raw))
        }
        return (payload, try HTTPClient.get(port: port, "/f?path=\(path)"))
    }

    deinit { try? FileManager.default.removeItem(atPath: appDirectory) }
}
