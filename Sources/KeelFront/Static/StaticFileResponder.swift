#if canImport(Glibc)
import Glibc
#endif
import KeelHTTP
import NIOCore
import NIOHTTP1

/// Static file serving for `static`/`root` routes, as nginx's static module with `index`, `gzip_static`, `expires`,
/// `try_files … @fallback`: conditional requests (ETag / Last-Modified → 304), single byte ranges (206, 416), HEAD,
/// sendfile. The path never leaves the directory: malformed or climbing paths answer 400, hidden and missing files
/// 404, symlinks out of the directory and directories without an index 403.
enum StaticFileResponder {
    enum Outcome {
        case reply(Reply)
        /// No file for this path, and the route names an upstream that answers instead.
        case fallback(upstream: String)
    }

    /// Where a route's files come from: its root (opened once per load) and, when configured, the loop's cache.
    struct Source {
        var root: StaticRoot
        /// The loop's open-file cache and its settings, when `[open_file_cache]` is configured.
        var openFiles: (cache: OpenFileCache, settings: FrontConfiguration.OpenFileCache)?
        var compression: FrontConfiguration.Compression
        var mimeTypes: [String: String]
        var allocator: ByteBufferAllocator
    }

    /// Files up to this size go out read into the response, in one send with the head; larger ones with sendfile.
    static let inlineLimit = 32 * 1024

    static func respond(
        _ files: FrontConfiguration.StaticFiles, routePrefix: String, request: ClientRequest, source: Source
    ) -> Outcome {
        let relative: String
        switch resolve(request.rawPath, routePrefix: routePrefix, keepsPrefix: files.keepsPrefix, dotfiles: files.dotfiles) {
        case .bad: return .reply(.plain(.badRequest, "Bad Request\n"))
        case .hidden: return notFound(files)
        case .path(let path): relative = path
        }
        let now = NIODeadline.now()
        let file: StaticFile
        switch open(relative, files, source, now: now) {
        case .file(let found): file = found
        case .directory:
            let query = request.query.isEmpty ? "" : "?\(request.query)"
            return .reply(.redirect(.movedPermanently, String(request.rawPath) + "/" + query))
        case .missing: return notFound(files)
        case .noIndex: return .reply(.plain(.forbidden, "Forbidden\n"))  // no listing: nginx's autoindex is off by default
        case .outside:
            FrontLog.warning("\(files.directory)/\(relative) leads outside \(files.directory) through a symlink: answered 403 (set follow_symlinks to allow)")
            return .reply(.plain(.forbidden, "Forbidden\n"))
        case .failed(let code): return .reply(errnoReply(code))
        }
        let method = request.head.method
        guard method == .GET || method == .HEAD else {
            var reply = Reply.plain(.methodNotAllowed, "Method Not Allowed\n")
            reply.headers.add(name: "Allow", value: "GET, HEAD")
            return .reply(reply)
        }
        let contentType = file.contentType(source.mimeTypes)
        if files.gzipStatic, AcceptEncoding.acceptsGzip(request.head.headers["accept-encoding"]),
            case .file(let compressed) = open(file.name + ".gz", files, source, now: now, indexes: false)
        {
            return .reply(reply(for: compressed, request: request, files: files, source: source, contentType: contentType, encoding: "gzip"))
        }
        return .reply(reply(for: file, request: request, files: files, source: source, contentType: contentType, encoding: nil))
    }

    private enum Found {
        case file(StaticFile)
        /// A directory asked for without its trailing slash: redirected.
        case directory
        case missing
        case noIndex
        case outside
        case failed(Int32)
    }

    /// The file for `relative` (a directory's index for "dir/"), from the cache when it holds it.
    private static func open(
        _ relative: String, _ files: FrontConfiguration.StaticFiles, _ source: Source, now: NIODeadline, indexes: Bool = true
    ) -> Found {
        let key = source.openFiles == nil ? "" : source.root.path + "\u{0}" + relative
        if let (cache, settings) = source.openFiles, let file = cache.file(for: key, settings: settings, now: now) {
            return .file(file)
        }
        var found: Found
        switch source.root.open(relative, symlinksOutside: files.symlinksOutside) {
        case .file(let file):
            file.name = relative
            found = .file(file)
        case .directory:
            guard indexes else { return .missing }
            guard relative.isEmpty || relative.hasSuffix("/") else { return .directory }
            found = .noIndex
            for index in files.index {
                if case .file(let file) = source.root.open(relative + index, symlinksOutside: files.symlinksOutside) {
                    file.name = relative + index
                    found = .file(file)
                    break
                }
            }
        case .missing: return .missing
        case .outside: return .outside
        case .failed(let code): return .failed(code)
        }
        if case .file(let file) = found, let (cache, settings) = source.openFiles {
            cache.store(file, for: key, settings: settings, now: now)
        }
        return found
    }

    private static func notFound(_ files: FrontConfiguration.StaticFiles) -> Outcome {
        if let fallback = files.fallback { return .fallback(upstream: fallback) }
        return .reply(.plain(.notFound, "Not Found\n"))
    }

    /// The headers every answer about this file carries (200, 206, 304): RFC 9110 §15.4.5 and §15.3.7 want a 304 and
    /// a 206 to carry what the 200 would that bears on caching, Vary among them.
    private static func validators(
        _ file: StaticFile, _ files: FrontConfiguration.StaticFiles, contentType: String, encoding: String?,
        compression: FrontConfiguration.Compression
    ) -> HTTPHeaders {
        var headers: HTTPHeaders = ["Last-Modified": file.lastModified, "ETag": file.etag]
        if let expires = files.expires {
            let seconds = expires.nanoseconds / 1_000_000_000
            headers.add(name: "Expires", value: httpDate(currentSeconds() + Int(seconds)))
            headers.add(name: "Cache-Control", value: "max-age=\(seconds)")
        }
        if let cacheControl = files.cacheControl { headers.replaceOrAdd(name: "Cache-Control", value: cacheControl) }
        // gzip_static picks by Accept-Encoding; so does the gzip filter for a 200 it would compress.
        let gzipFilterVaries = encoding == nil && compression.enabled && file.size >= compression.minLength
            && CompressionPolicy.matches(contentType, compression.types)
        if files.gzipStatic || gzipFilterVaries { headers.add(name: "Vary", value: "Accept-Encoding") }
        return headers
    }

    private static func reply(
        for file: StaticFile, request: ClientRequest, files: FrontConfiguration.StaticFiles, source: Source,
        contentType: String, encoding: String?
    ) -> Reply {
        var headers = validators(file, files, contentType: contentType, encoding: encoding, compression: source.compression)
        let requestHeaders = request.head.headers
        if Conditional.notModified(requestHeaders, etag: file.etag, modified: file.modified) {
            return Reply(status: .notModified, headers: headers, body: .none)
        }
        headers.add(name: "Content-Type", value: contentType)
        if let encoding { headers.add(name: "Content-Encoding", value: encoding) }
        headers.add(name: "Accept-Ranges", value: "bytes")
        var range = 0..<file.size
        var status = HTTPResponseStatus.ok
        if let rangeHeader = requestHeaders.first(name: "range"),
            Conditional.ifRangeAllows(requestHeaders, etag: file.etag, modified: file.modified)
        {
            switch ByteRange.parse(rangeHeader, size: file.size) {
            case .whole:
                break
            case .unsatisfiable:
                return Reply(
                    status: .rangeNotSatisfiable,
                    headers: ["Content-Range": "bytes */\(file.size)", "Content-Length": "0"], body: .none)
            case .part(let part):
                range = part
                status = .partialContent
                headers.add(name: "Content-Range", value: "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(file.size)")
            }
        }
        headers.add(name: "Content-Length", value: String(range.count))
        if range.count <= inlineLimit, request.head.method != .HEAD, let bytes = file.read(range, allocator: source.allocator) {
            return Reply(status: status, headers: headers, body: .buffer(bytes))
        }
        return Reply(status: status, headers: headers, body: .file(file, range))
    }

    // MARK: paths

    enum Resolution: Equatable {
        case path(String)
        /// Malformed: bad escapes, NUL, backslash, invalid UTF-8, or ".." — never looked up.
        case bad
        /// A name starting with "." while dotfiles are hidden.
        case hidden
    }

    /// The path under the directory, decoded and normalised ("." segments dropped); the route prefix is stripped
    /// for `static` (alias) and kept for `root`.
    static func resolve(_ rawPath: Substring, routePrefix: String, keepsPrefix: Bool, dotfiles: Bool) -> Resolution {
        guard rawPath.hasPrefix(routePrefix) else { return .bad }
        let remainder = keepsPrefix ? rawPath : rawPath.dropFirst(routePrefix.count)
        guard let bytes = PercentDecoding.bytes(remainder.utf8),
            !bytes.contains(0), !bytes.contains(UInt8(ascii: "\\")),
            let decoded = String(validating: bytes, as: UTF8.self)  // rejects overlong and other invalid UTF-8
        else { return .bad }
        var segments: [Substring] = []
        for segment in decoded.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." { return .bad }
            if segment.hasPrefix("."), !dotfiles { return .hidden }
            segments.append(segment)
        }
        let joined = segments.joined(separator: "/")
        return .path(decoded.hasSuffix("/") && !joined.isEmpty ? joined + "/" : joined)
    }

    private static func errnoReply(_ code: Int32) -> Reply {
        switch code {
        case ENAMETOOLONG: .plain(.notFound, "Not Found\n")
        case EACCES, EPERM, ELOOP: .plain(.forbidden, "Forbidden\n")
        default: .plain(.internalServerError, "Internal Server Error\n")
        }
    }

    /// RFC 9110 IMF-fixdate: "Tue, 24 Nov 2026 10:00:00 GMT".
    static func httpDate(_ seconds: Int) -> String { HTTPDateClock.format(seconds) }

    private static func currentSeconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now.tv_sec
    }
}

/// Content types by extension: the common part of nginx's mime.types, under the configuration's `[mime_types]`.
enum MediaTypes {
    static let byExtension: [String: String] = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
        "js": "application/javascript; charset=utf-8", "mjs": "application/javascript; charset=utf-8",
        "json": "application/json", "txt": "text/plain; charset=utf-8", "xml": "application/xml",
        "svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "avif": "image/avif", "ico": "image/x-icon", "woff": "font/woff", "woff2": "font/woff2",
        "ttf": "font/ttf", "otf": "font/otf", "pdf": "application/pdf", "zip": "application/zip",
        "gz": "application/gzip", "wasm": "application/wasm", "mp4": "video/mp4", "webm": "video/webm",
        "mp3": "audio/mpeg", "ogg": "audio/ogg", "csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8",
        "map": "application/json", "webmanifest": "application/manifest+json",
    ]

    static func type(forPath path: String, overrides: [String: String] = [:]) -> String {
        let bytes = path.utf8
        guard let dot = bytes.lastIndex(of: UInt8(ascii: ".")), !bytes[dot...].contains(UInt8(ascii: "/")) else {
            return "application/octet-stream"
        }
        let name = ASCIIText.lowercased(Substring(path)[path.index(after: dot)...])
        return overrides[name] ?? byExtension[name] ?? "application/octet-stream"
    }
}
