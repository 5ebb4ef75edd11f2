import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real nginx (Debian package) in front of keel-pool with `uwsgi_pass`, as uWSGI users run it.
@Suite("nginx uwsgi_pass → keel-pool", .serialized, .timeLimit(.minutes(2)))
struct NginxInteropTests {
    static let nginxPath = ["/usr/sbin/nginx", "/usr/bin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// nginx with one `location /` passing everything to `socket`, on a free port.
    final class Nginx: @unchecked Sendable {
        let process: ManagedProcess
        let port: Int

        init(directory: String, socket: String) throws {
            let nginx = try #require(NginxInteropTests.nginxPath, "nginx is not installed: run Tests/run.sh, which installs it")
            port = try Harness.freePort()
            let user = getuid() == 0 ? "user root;" : ""
            let config = """
                \(user)
                worker_processes 1;
                error_log \(directory)/nginx-error.log warn;
                pid \(directory)/nginx.pid;
                events { worker_connections 256; }
                http {
                    access_log off;
                    client_body_temp_path \(directory)/client_body;
                    proxy_temp_path \(directory)/proxy;
                    fastcgi_temp_path \(directory)/fastcgi;
                    uwsgi_temp_path \(directory)/uwsgi;
                    scgi_temp_path \(directory)/scgi;
                    client_max_body_size 8m;
                    server {
                        listen 127.0.0.1:\(port);
                        server_name localhost;
                        location / {
                            include /etc/nginx/uwsgi_params;
                            uwsgi_pass unix:\(socket);
                        }
                    }
                }
                """
            try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            process = try ManagedProcess(
                nginx, ["-c", directory + "/nginx.conf", "-p", directory, "-g", "daemon off;"], logPath: directory + "/nginx.out")
            try Harness.waitUntil("nginx to listen on \(port)") {
                guard process.isRunning else { throw HarnessError("nginx exited:\n\(process.log)") }
                return (try? TestSocket(tcpPort: port)) != nil
            }
        }

        deinit { try? process.stop(signal: SIGQUIT) }
    }

    @Test func getWithQueryAndHeadersReachesTheAppIntact() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "env", "--processes", "2"])
        let nginx = try Nginx(directory: pool.directory, socket: pool.socketPath!)
        let reply = try HTTPClient.request(
            port: nginx.port, "/some/path%20x?a=1&b=two%20words",
            headers: [("X-Request-Id", "abc-123"), ("Accept", "text/plain"), ("Cookie", "k=v")])
        #expect(reply.status == 200)
        let env = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: String])
        #expect(env["REQUEST_METHOD"] == "GET")
        #expect(env["QUERY_STRING"] == "a=1&b=two%20words")
        #expect(env["REQUEST_URI"] == "/some/path%20x?a=1&b=two%20words")
        #expect(env["PATH_INFO"] == "/some/path x")
        #expect(env["SERVER_PROTOCOL"] == "HTTP/1.1")
        #expect(env["SERVER_PORT"] == String(nginx.port))
        #expect(env["REMOTE_ADDR"] == "127.0.0.1")
        #expect(env["REQUEST_SCHEME"] == "http")
        #expect(env["HTTP_X_REQUEST_ID"] == "abc-123")
        #expect(env["HTTP_ACCEPT"] == "text/plain")
        #expect(env["HTTP_COOKIE"] == "k=v")
        // Debian's uwsgi_params sends HTTP_HOST as $host (no port), a deliberate security workaround.
        #expect(env["HTTP_HOST"] == "127.0.0.1")
        try pool.stop()
    }

    @Test func postOfOneMebibyteEchoesByteExact() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "echo"])
        let nginx = try Nginx(directory: pool.directory, socket: pool.socketPath!)
        let body = testBytes(count: 1 << 20, seed: 99)
        let reply = try HTTPClient.request(
            port: nginx.port, method: "POST", "/upload", headers: [("Content-Type", "application/octet-stream")],
            body: body)
        #expect(reply.status == 200)
        #expect(reply.body.count == body.count)
        #expect(reply.body == body)
        try pool.stop()
    }

    @Test func notFoundFromTheAppPassesThrough() throws {
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "status"])
        let nginx = try Nginx(directory: pool.directory, socket: pool.socketPath!)
        let reply = try HTTPClient.get(port: nginx.port, "/404")
        #expect(reply.status == 404)
        #expect(reply.text == "status 404\n")
        #expect(try HTTPClient.get(port: nginx.port, "/503").status == 503)
        try pool.stop()
    }

    @Test func appErrorStatusPassesThrough() throws {
        // `sleep` answers a bad ?ms= with its own 400: nginx must pass the app's status and body on unchanged.
        let pool = try PoolUnderTest(http: false, uwsgi: true, ["--app", "sleep"])
        let nginx = try Nginx(directory: pool.directory, socket: pool.socketPath!)
        let reply = try HTTPClient.get(port: nginx.port, "/?ms=oops")
        #expect(reply.status == 400)
        #expect(reply.text.contains("?ms= must be an integer"))
        let ok = try HTTPClient.get(port: nginx.port, "/?ms=1")
        #expect(ok.status == 200)
        try pool.stop()
    }
}
