import Foundation
import NIOCore
import Testing

@testable import KeelFront

/// Every error the loader and `validate` can give: the key it names and the message it says.
@Suite struct ConfigLoaderErrorTests {
    static let parseCases: [ConfigErrorCase] = [
        // Unknown keys, with a suggestion when one is close.
        .init("routes = 1", "routes", "unknown key (did you mean \"route\"?)"),
        .init("colour = 1", "colour", "unknown key; known keys here: event_loops, listen, limits, log, gzip, mime_types, tls, upstream"),
        // TLS: listeners, certificates and settings.
        .init("[tls]\nciphres = \"x\"", "tls.ciphres", "unknown key (did you mean \"ciphers\"?)"),
        .init("[tls]\nmin_version = \"TLSv1.4\"", "tls.min_version", "unknown version \"TLSv1.4\"; use one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
        .init("[tls]\nsession_tickets = \"yes\"", "tls.session_tickets", "expected true or false"),
        .init("[tls]\nhsts = \"maxage=1\"", "tls.hsts", "expected a Strict-Transport-Security value"),
        .init("[tls]\nticket_key_rotation = \"5s\"", "tls.ticket_key_rotation", "must be at least 1m"),
        .init("[tls]\nhandshake_timeout = \"1ms\"", "tls.handshake_timeout", "must be at least 100ms"),
        .init("[[tls.certificate]]\ncert = \"a.pem\"", "tls.certificate[0].key", "missing; give the PEM private key file"),
        .init("[[tls.certificate]]\nkey = \"a.key\"", "tls.certificate[0].cert", "missing; give the PEM certificate chain file"),
        .init("[[tls.certificate]]\ncert = \"a\"\nkey = \"b\"\nchain = \"c\"", "tls.certificate[0].chain", "unknown key"),
        .init("[[listen]]\naddress = \"127.0.0.1:8443\"\ntls = true", "listen[0]", "a TLS listener needs a certificate"),
        .init("[[listen]]\naddress = \"127.0.0.1:8443\"\ntls = \"on\"", "listen[0].tls", "expected true or false"),
        .init(
            "[[listen]]\naddress = \"127.0.0.1:80\"\nredirect_to_https = true", "listen[0].redirect_to_https",
            "there is no TLS listener to redirect to"),
        .init(
            "[[listen]]\naddress = \"127.0.0.1:443\"\ntls = true\nredirect_to_https = true", "listen[0].redirect_to_https",
            "a TLS listener cannot redirect to itself"),
        .init("[[route]]\nreturn = 200\nindex = [\"i.html\"]", "route[0].index", "index only goes with static or root"),
        .init("[[route]]\nstatic = \"/tmp\"\ngzip_static = 1", "route[0].gzip_static", "expected true or false"),
        .init("[[route]]\nstatic = \"/tmp\"\nfallback = \"nosuch\"", "route[0].fallback", "unknown upstream \"nosuch\""),
        .init("[[route]]\nstatic = \"/tmp\"\nindex = [\"a/b.html\"]", "route[0].index[0]", "must be a file name"),
        .init("[[route]]\nroot = \"/nonexistent-keel\"", "route[0].root", "No such file or directory"),
        .init("[mime_types]\nmd = 1", "mime_types.md", "expected a string"),
        .init("[gzip]\nlevle = 5", "gzip.levle", "unknown key (did you mean \"level\"?)"),
        .init("[gzip]\nenabled = \"yes\"", "gzip.enabled", "expected true or false, got the string \"yes\""),
        .init("[gzip]\nlevel = 10", "gzip.level", "must be from 1 (fastest) to 9 (smallest), got 10"),
        .init("[open_file_cache]\nmax = 0", "open_file_cache.max", "must be at least 1 (leave the table out to turn the cache off), got 0"),
        .init("[open_file_cache]\nvalid = \"0s\"", "open_file_cache.valid", "must be longer than 0"),
        .init("[open_file_cache]\ninactiv = \"5s\"", "open_file_cache.inactiv", "unknown key (did you mean \"inactive\"?)"),
        .init("server_tokens = \"off\"", "server_tokens", "expected true or false"),
        .init("[gzip]\nmin_length = -1", "gzip.min_length", "a size cannot be negative"),
        .init("[gzip]\ntypes = [\"textplain\"]", "gzip.types[0]", "is not a media type like \"text/*\""),
        .init("[gzip]\ntypes = \"text/*\"", "gzip.types", "expected an array of strings"),
        .init(
            "[limits]\nclient_max_body_sise = \"1m\"", "limits.client_max_body_sise",
            "(did you mean \"client_max_body_size\"?)"),
        .init("[log]\nlevle = \"info\"", "log.levle", "unknown key (did you mean \"level\"?)"),
        .init(
            "[upstream.app]\nserver = [\"/a.sock\"]", "upstream.app.server",
            "unknown key (did you mean \"servers\"?)"),
        .init("[[route]]\npth = \"/\"\nreturn = 200", "route[0].pth", "unknown key (did you mean \"path\"?)"),
        .init("[[pool]]\narg = []", "pool[0].arg", "unknown key (did you mean \"args\"?)"),
        .init("[[listen]]\nadress = \":80\"", "listen[0].adress", "unknown key (did you mean \"address\"?)"),
        // Wrong TOML types.
        .init("event_loops = \"2\"", "event_loops", "expected an integer like 2, got the string \"2\""),
        .init("[log]\nlevel = 3", "log.level", "expected a string like \"info\", got the integer 3"),
        .init(
            "[limits]\nclient_max_body_size = true", "limits.client_max_body_size",
            "expected a size like \"16k\" or a number of bytes, got true"),
        .init(
            "[limits]\nsend_timeout = [1]", "limits.send_timeout",
            "expected a duration like \"30s\" or a number of seconds, got an array"),
        .init("[limits]\nsend_timeout = 1.5", "limits.send_timeout", "got the number 1.5"),
        .init("limits = 3", "limits", "expected a table [limits], got the integer 3"),
        .init("[upstream]\napp = \"x\"", "upstream.app", "expected a table [upstream.app], got the string \"x\""),
        .init("route = \"x\"", "route", "expected tables written [[route]], got the string \"x\""),
        .init("[route]\nreturn = 200", "route", "expected tables written [[route]], got a table"),
        .init("route = [1]", "route[0]", "expected a table written [[route]], got the integer 1"),
        .init(
            "[[route]]\nhost = 3\nreturn = 200", "route[0].host",
            "expected a string like \"example.com\" or \"*.example.com\" or an array of them"),
        .init(
            "[[route]]\nhost = [\"a.com\", 3]\nreturn = 200", "route[0].host[1]",
            "expected a string like \"example.com\""),
        .init(
            "[[pool]]\nargs = \"--socket /a.sock\"", "pool[0].args",
            "expected an array of strings like [\"--socket\""),
        .init("listen = [true]", "listen[0]", "expected an address like \"127.0.0.1:8080\" or a port number, got true"),
        // Values that do not parse.
        .init(
            "[limits]\nclient_max_body_size = -1", "limits.client_max_body_size",
            "a size cannot be negative, got -1"),
        .init(
            "[limits]\nclient_max_body_size = \"1x\"", "limits.client_max_body_size",
            "expected a size like \"512\", \"16k\""),
        .init(
            "[limits]\nclient_max_body_size = \"99999999999g\"", "limits.client_max_body_size",
            "size \"99999999999g\" is too large"),
        .init("[limits]\nsend_timeout = -5", "limits.send_timeout", "a duration cannot be negative, got -5"),
        .init("[limits]\nsend_timeout = \"5x\"", "limits.send_timeout", "expected a duration like \"500ms\""),
        .init(
            "[limits]\nsend_timeout = \"99999999999d\"", "limits.send_timeout",
            "duration \"99999999999d\" is too long"),
        .init("listen = [\"localhost\"]", "listen[0]", "\"localhost\": missing port; write HOST:PORT, :PORT or PORT"),
        .init("listen = 70000", "listen", "port 70000: use a port from 1 to 65535"),
        .init("[[listen]]", "listen[0]", "missing address; write address = \"127.0.0.1:8080\""),
        .init(
            "[upstream.\"a b\"]\nservers = [\"/a.sock\"]", "upstream.a b",
            "invalid upstream name; use letters, digits"),
        .init(
            "[upstream.app]\nservers = [\"/a.sock\", \"nohost\"]", "upstream.app.servers[1]",
            "\"nohost\": missing port"),
        // Routes.
        .init("[[route]]\npath = \"/\"", "route[0]", "no action; give one of uwsgi, proxy, static, root, redirect or return"),
        .init(
            "[[route]]\nreturn = 200\nredirect = \"/x\"", "route[0]",
            "more than one action (redirect, return); a route does one thing, keep one"),
        .init(
            "[[route]]\nuwsgi = \"app\"\nstatus = 301", "route[0].status",
            "status only goes with redirect; remove it or make this a redirect route"),
        .init("[[route]]\nredirect = \"/x\"\nbody = \"x\"", "route[0].body", "body only goes with return"),
        .init(
            "[[route]]\nuwsgi = \"http://127.0.0.1:9000\"", "route[0].uwsgi",
            "http:// is for proxy routes; a uwsgi server is"),
        .init(
            "[[route]]\nproxy = \"http://127.0.0.1:9000/app\"", "route[0].proxy",
            "give http://HOST:PORT without a path"),
        .init("[[route]]\nproxy = \"ftp://x:1\"", "route[0].proxy", "unsupported scheme"),
        // Pools.
        .init(
            "[[pool]]\nargs = [\"-s\", \"/a.sock\"]\ncommand = \"keel-pool -s /a.sock\"", "pool[0]",
            "give either args or command, not both"),
        .init("[[pool]]\nname = \"app\"", "pool[0]", "no keel-pool arguments; give args = [\"--socket\""),
        .init("[[pool]]\ncommand = \"keel-pool --app 'hello\"", "pool[0].command", "unterminated ' quote; close it"),
        .init(
            "[[pool]]\nargs = [\"--app\", \"hello\"]", "pool[0].args",
            "no --socket; keel needs the pool's uwsgi socket"),
        .init("[[pool]]\ncommand = \"keel-pool --processes 2\"", "pool[0].command", "no --socket; keel needs"),
        .init(
            "[[pool]]\nargs = []", "pool[0].args",
            "no keel-pool arguments; give at least --socket PATH and --app NAME"),
        .init(
            "[[pool]]\nargs = [\"--socket\", \"nohost\"]", "pool[0].args",
            "--socket \"nohost\": expected a unix socket path or HOST:PORT"),
        .init("[[pool]]\nargs = [\"--socket\"]", "pool[0].args", "--socket has no value; give --socket /run/NAME.sock"),
        .init(
            "[[pool]]\nargs = [\"--socket\", \"unix:\"]", "pool[0].args",
            "--socket \"unix:\": give the socket's path after unix:"),
        // validate(_:) rules, reached through a file.
        .init("event_loops = 0", "event_loops", "must be from 1 to 256, got 0"),
        .init("event_loops = 257", "event_loops", "must be from 1 to 256, got 257"),
        .init("listen = [\":8080\", \"0.0.0.0:8080\"]", "listen[1]", "0.0.0.0:8080 is already listen[0]; remove one"),
        .init(
            "[limits]\nclient_body_buffer_size = \"512\"", "limits.client_body_buffer_size",
            "must be at least 1k and less than 1g, got 512 bytes"),
        .init(
            "[limits]\nclient_body_buffer_size = \"1g\"", "limits.client_body_buffer_size",
            "less than 1g, got 1073741824 bytes"),
        .init(
            "[limits]\nclient_body_temp_path = \"$TMP/missing\"", "limits.client_body_temp_path",
            "directory \"$TMP/missing\": No such file or directory; create it or fix the path"),
        .init(
            "[limits]\nclient_body_temp_path = \"$TMP/file.txt\"", "limits.client_body_temp_path",
            "\"$TMP/file.txt\" is not a directory"),
        .init(
            "[limits]\nmax_header_size = \"2m\"", "limits.max_header_size",
            "must be from 1k to 1m, got 2097152 bytes"),
        .init("[limits]\nmax_header_size = 1023", "limits.max_header_size", "must be from 1k to 1m, got 1023 bytes"),
        .init(
            "[limits]\nclient_header_timeout = 0", "limits.client_header_timeout",
            "must be more than 0, e.g. \"60s\""),
        .init("[limits]\ngraceful_timeout = \"0ms\"", "limits.graceful_timeout", "must be more than 0"),
        .init("[limits]\nkeepalive_requests = 0", "limits.keepalive_requests", "must be at least 1"),
        // HTTP/2: listener switches and nginx's http2_* limits.
        .init(
            "[[listen]]\naddress = \"127.0.0.1:80\"\nhttp2 = true", "listen[0].http2",
            "only TLS listeners negotiate HTTP/2 by ALPN; for plaintext HTTP/2 write h2c = true"),
        .init(
            "[[listen]]\naddress = \"127.0.0.1:443\"\ntls = true\nh2c = true", "listen[0].h2c",
            "h2c is HTTP/2 without TLS; on a TLS listener HTTP/2 is offered by ALPN (http2 = true)"),
        .init("[[listen]]\naddress = \"127.0.0.1:80\"\nh2c = \"on\"", "listen[0].h2c", "expected true or false"),
        .init(
            "[[listen]]\naddress = \"127.0.0.1:80\"\nh2c = true\nredirect_to_https = true\n[[listen]]\naddress = \"127.0.0.1:443\"\ntls = true",
            "listen[0].h2c", "a redirect_to_https listener sends every client to TLS"),
        .init("[[listen]]\naddress = \"127.0.0.1:80\"\nh2 = true", "listen[0].h2", "unknown key (did you mean \"h2c\"?)"),
        .init("[limits]\nhttp2_max_concurrent_streams = 0", "limits.http2_max_concurrent_streams", "must be from 1 to 10000, got 0"),
        .init("[limits]\nhttp2_max_requests = 0", "limits.http2_max_requests", "must be at least 1"),
        .init("[limits]\nhttp2_initial_window_size = \"4g\"", "limits.http2_initial_window_size", "must be from 1k to 1g"),
        .init("[limits]\nhttp2_max_streams = 5", "limits.http2_max_streams", "unknown key"),
        .init("[limits]\nmax_connections = 0", "limits.max_connections", "must be at least 1"),
        .init(
            "[log]\nlevel = \"infoo\"", "log.level",
            "unknown level \"infoo\" (did you mean \"info\"?); use one of debug, info, notice, warning, error"),
        .init("[log]\naccess = \"\"", "log.access", "empty path; give a path, \"-\" for stdout or \"off\""),
        .init(
            "[log]\naccess = \"$TMP/missing/access.log\"", "log.access",
            "directory \"$TMP/missing\": No such file or directory"),
        .init("[log]\nerror = \"off\"", "log.error", "the error log cannot be off; give a path or \"-\" for stderr"),
        .init("[log]\nerror = \"\"", "log.error", "empty path; give a path or \"-\" for stderr"),
        .init("[log]\nerror = \"$TMP/file.txt/error.log\"", "log.error", "\"$TMP/file.txt\" is not a directory"),
        .init(
            "[upstream.app]\nmax_fails = 1", "upstream.app.servers",
            "no servers; give servers = [\"unix:/run/app.sock\"]"),
        .init("[upstream.app]\nservers = []", "upstream.app.servers", "no servers"),
        .init(
            "[upstream.app]\nservers = [\"/a.sock\"]\nmax_fails = -1", "upstream.app.max_fails",
            "cannot be negative (0 = never mark a server down)"),
        .init(
            "[upstream.app]\nservers = [\"/a.sock\"]\nkeepalive = -1", "upstream.app.keepalive",
            "cannot be negative (0 = no idle connections kept)"),
        .init(
            "[upstream.app]\nservers = [\"/a.sock\"]\nconnect_timeout = \"0s\"", "upstream.app.connect_timeout",
            "must be more than 0, e.g. \"10s\""),
        .init("[[route]]\npath = \"api\"\nreturn = 200", "route[0].path", "must start with \"/\", e.g. \"/api\""),
        .init(
            "[[route]]\nhost = \"a.*.com\"\nreturn = 200", "route[0].host",
            "\"a.*.com\" is not a host name; write \"example.com\" or \"*.example.com\""),
        .init("[[route]]\nhost = [\"*.\"]\nreturn = 200", "route[0].host", "\"*.\" is not a host name"),
        .init(
            "[upstream.app]\nservers = [\"/a.sock\"]\n[[route]]\nuwsgi = \"ap\"", "route[0].uwsgi",
            "unknown upstream \"ap\" (did you mean \"app\"?) (define [upstream.ap] or fix the name)"),
        .init(
            "[[route]]\nproxy = \"backend\"", "route[0].proxy",
            "unknown upstream \"backend\" (define [upstream.backend] or fix the name)"),
        .init("[[route]]\nstatic = \"\"", "route[0].static", "empty directory; give the directory to serve"),
        .init(
            "[[route]]\nstatic = \"$TMP/missing\"", "route[0].static",
            "directory \"$TMP/missing\": No such file or directory"),
        .init("[[route]]\nstatic = \"file.txt\"", "route[0].static", "\"$TMP/file.txt\" is not a directory"),
        .init("[[route]]\nredirect = \"\"", "route[0].redirect", "empty location; give a URL"),
        .init(
            "[[route]]\nredirect = \"/x\"\nstatus = 200", "route[0].status",
            "redirect status must be 301, 302, 303, 307 or 308, got 200"),
        .init("[[route]]\nreturn = 600", "route[0].return", "status must be from 100 to 599, got 600"),
        .init(
            "[[route]]\nhost = [\"B.com\", \"a.com\"]\nreturn = 200\n"
                + "[[route]]\nhost = [\"a.com\", \"b.com\"]\nreturn = 404",
            "route[1]", "same host and path as route[0], so it would never match"),
        .init(
            "[[pool]]\nname = \"\"\nargs = [\"-s\", \"/a.sock\"]", "pool[0].name",
            "empty name; give the pool a name like \"app\""),
        .init(
            "[[pool]]\nname = \"x\"\nargs = [\"-s\", \"/a.sock\"]\n"
                + "[[pool]]\nname = \"x\"\nargs = [\"-s\", \"/b.sock\"]",
            "pool[1].name", "\"x\" is also pool[0]'s name; rename one"),
        .init(
            "[[pool]]\nargs = [\"-s\", \"/a.sock\"]\n[[pool]]\ncommand = \"keel-pool --socket=unix:/a.sock\"",
            "pool[1].args", "--socket unix:/a.sock is also pool[0]'s; give each pool its own socket"),
    ]

    @Test(arguments: parseCases)
    func fileErrorNamesTheKey(_ testCase: ConfigErrorCase) throws {
        try withScratchDirectory { directory in
            let file = "\(directory)/keel.toml"
            let toml = testCase.toml.replacingOccurrences(of: "$TMP", with: directory)
            let error = try #require(parseError(toml, file: file), "no error for \(toml)")
            let message = testCase.message.replacingOccurrences(of: "$TMP", with: directory)
            #expect(error.key == testCase.key)
            #expect(error.message.contains(message), "\(error.message)")
            #expect(error.description == "\(file): \(testCase.key): \(error.message)")
        }
    }

    @Test func syntaxErrorGivesLineAndColumn() throws {
        let error = try #require(parseError("event_loops = 2\n\n[limits\n"))
        #expect(error.key == "")
        #expect(error.message.hasPrefix("TOML syntax error at line 3, column "), "\(error.message)")
        #expect(error.description.hasPrefix("keel.toml: TOML syntax error at line 3"))
    }

    /// A change to a valid built configuration and the error `validate(_:)` must then give.
    struct BuiltCase: Sendable, CustomTestStringConvertible {
        let key: String
        let message: String
        let change: @Sendable (inout FrontConfiguration) -> Void
        var testDescription: String { "\(key): \(message)" }
    }

    /// Rules only a configuration built in code (from flags) can break: the TOML parsers already reject these.
    static let builtCases: [BuiltCase] = [
        .init(key: "listen[0]", message: "port 0: use a port from 1 to 65535") {
            $0.listeners = [.init(host: "127.0.0.1", port: 0)]
        },
        .init(key: "limits.client_max_body_size", message: "cannot be negative (0 = no limit)") {
            $0.limits.clientMaxBodySize = -1
        },
        .init(key: "limits.keepalive_timeout", message: "cannot be negative (0 = no keep-alive)") {
            $0.limits.keepaliveTimeout = .seconds(-1)
        },
        .init(key: "pool[0].args", message: "no keel-pool arguments") { $0.pools[0].args = [] },
        .init(key: "pool[0].args", message: "no --socket") { $0.pools[0].args = ["--app", "hello"] },
        .init(key: "route[0].uwsgi", message: "unknown upstream \"127.0.0.1:9000\"") {
            $0.routes[0].action = .uwsgi(upstream: "127.0.0.1:9000")
        },
    ]

    @Test(arguments: builtCases)
    func builtConfigurationErrors(_ testCase: BuiltCase) throws {
        var config = FrontConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 8080)],
            upstreams: ["app": .init(name: "app", servers: [.unix(path: "/run/app.sock")])],
            routes: [.init(action: .uwsgi(upstream: "app"))],
            pools: [.init(name: "app", args: ["--socket", "/run/app.sock"], socket: .unix(path: "/run/app.sock"))],
            eventLoops: 2)
        try ConfigLoader.validate(config)
        testCase.change(&config)
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.validate(config) }
        #expect(error?.key == testCase.key)
        #expect(error?.message.contains(testCase.message) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("command line: \(testCase.key): ") == true)
    }

    @Test func unreadableFilesSayWhy() throws {
        try withScratchDirectory { directory in
            let cases = [
                ("\(directory)/missing.toml", "cannot open: No such file or directory"),
                (directory, "cannot read: Is a directory"),
                ("/dev/zero", "larger than 16 MiB; is this the configuration file?"),
                ("\(directory)/latin1.toml", "not UTF-8 text; save the file as UTF-8"),
            ]
            try Data([0x23, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: "\(directory)/latin1.toml"))
            for (path, message) in cases {
                let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path) }
                #expect(error == ConfigError(file: path, key: "", message: message))
                #expect(error?.description == "\(path): \(message)")
            }
        }
    }

    @Test func suggestionsNeedAnEditDistanceOfAtMostTwo() {
        #expect(ConfigValues.editDistance("kitten", "sitting") == 3)
        #expect(ConfigValues.editDistance("", "abc") == 3)
        #expect(ConfigValues.didYouMean("lmits", among: ConfigLoader.documentKeys) == " (did you mean \"limits\"?)")
        #expect(ConfigValues.didYouMean("warn", among: ConfigLoader.logLevels) == "")
    }
}
