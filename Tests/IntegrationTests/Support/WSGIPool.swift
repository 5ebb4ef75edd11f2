import Foundation

/// keel-pool serving one callable of the WSGI test apps module, with the module's temp directory.
final class WSGIPool: @unchecked Sendable {
    let appDirectory: String
    let pool: PoolUnderTest

    init(_ callable: String, http: Bool = true, uwsgi: Bool = false, _ arguments: [String] = []) throws {
        appDirectory = try WSGITestApps.makeDirectory()
        pool = try PoolUnderTest(
            http: http, uwsgi: uwsgi,
            ["--wsgi", "\(WSGITestApps.module):\(callable)", "--pythonpath", appDirectory] + arguments)
    }

    var port: Int { pool.httpPort! }
    var log: String { pool.log }

    deinit { try? FileManager.default.removeItem(atPath: appDirectory) }
}
