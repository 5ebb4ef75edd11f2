import Testing

@testable import KeelFront

@Suite struct RouterTests {
    typealias Route = FrontConfiguration.Route

    static let routes: [Route] = [
        Route(pathPrefix: "/", action: .fixed(status: 200, body: "default root", contentType: "text/plain")),
        Route(pathPrefix: "/api/", action: .uwsgi(upstream: "api")),
        Route(pathPrefix: "/api/v2/", action: .uwsgi(upstream: "api2")),
        Route(hosts: ["example.com"], pathPrefix: "/", action: .proxy(upstream: "site")),
        Route(hosts: ["example.com"], pathPrefix: "/static/", action: .staticFiles(.init(directory: "/srv"))),
        Route(hosts: ["*.example.com"], pathPrefix: "/", action: .uwsgi(upstream: "wild")),
        Route(hosts: ["*.eu.example.com"], pathPrefix: "/", action: .uwsgi(upstream: "eu")),
        Route(hosts: ["only-api.test"], pathPrefix: "/api/", action: .uwsgi(upstream: "only")),
    ]

    @Test(arguments: [
        (nil as String?, "/", 0),
        (nil, "/api", 0),
        (nil, "/api/x", 1),
        (nil, "/api/v2/users", 2),
        ("unknown.test", "/api/v2/", 2),
        ("example.com", "/anything", 3),
        ("EXAMPLE.com:8080", "/static/a.css", 4),
        ("example.com.", "/", 3),
        ("www.example.com", "/", 5),
        ("a.eu.example.com", "/", 6),
        ("[::1]:80", "/api/", 1),
    ])
    func hostThenLongestPrefix(host: String?, path: String, expected: Int) {
        let router = Router(routes: Self.routes)
        #expect(router.match(host: host, path: Substring(path))?.index == expected)
    }

    @Test func aMatchedHostDoesNotFallBackToTheDefaultServer() {
        let router = Router(routes: Self.routes)
        #expect(router.match(host: "only-api.test", path: "/api/x")?.index == 7)
        #expect(router.match(host: "only-api.test", path: "/other") == nil, "nginx answers 404 from that server")
        #expect(router.match(host: "example.com", path: "/x")?.index == 3)
    }

    @Test func wildcardDoesNotMatchTheBareDomain() {
        let router = Router(routes: [
            Route(hosts: ["*.example.com"], action: .uwsgi(upstream: "wild")),
            Route(action: .uwsgi(upstream: "default")),
        ])
        #expect(router.match(host: "example.com", path: "/")?.index == 1)
        #expect(router.match(host: "a.example.com", path: "/")?.index == 0)
    }

    @Test func noDefaultRoutesMeansNoMatch() {
        let router = Router(routes: [Route(hosts: ["a.test"], action: .uwsgi(upstream: "a"))])
        #expect(router.match(host: "b.test", path: "/") == nil)
        #expect(router.match(host: nil, path: "/") == nil)
    }
}
