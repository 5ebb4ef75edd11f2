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

    static func respond(
        _ files: FrontConfiguration.StaticFiles, routePrefix: String, request: ClientRequest, mimeTypes: [String: String]
    ) -> Outcome {
        let relative: String
        switch resolve(request.rawPath, routePrefix: routePrefix, keepsPrefix: files.keepsPrefix, dotfiles: files.dotfiles) {
        case .bad: return .reply(.plain(.badRequest, "Bad Request\n"))
        case .hidden: return notFound(files)
        case .path(let path): relative = path
        }
        var path = files.directory + "/" + relative
        var info = stat()
        guard stat(path, &info) == 0 else { return errno == ENOENT || errno == ENOTDIR ? notFound(files) : .reply(errnoReply(errno)) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard relative.isEmpty || relative.hasSuffix("/") else {
                let query = request.query.isEmpty ? "" : "?\(request.query)"
                return .reply(.redirect(.movedPermanently, String(request.rawPath) + "/" + query))
            }
            guard let index = files.index.first(where: { isRegularFile(path + $0) }) else {
                return .reply(.plain(.forbidden, "Forbidden\n"))  // no listing: nginx's autoindex is off by default
            }
            path += index
        }
        guard files.symlinksOutside || staysInside(path, root: files.directory) else {
            FrontLog.warning("\(path) leads outside \(files.directory) through a symlink: answered 403 (set follow_symlinks to allow)")
            return .reply(.plain(.forbidden, "Forbidden\n"))
        }
        let method = request.head.method
        guard method == .GET || method == .HEAD else {
            var reply = Reply.plain(.methodNotAllowed, "Method Not Allowed\n")
            reply.headers.add(name: "Allow", value: "GET, HEAD")
            return .reply(reply)
        }
        let contentType = MediaTypes.type(forPath: path, overrides: mimeTypes)
        var encoding: String?
        var file: OpenFile
        if files.gzipStatic, AcceptEncoding.acceptsGzip(request.head.headers["accept-encoding"]),
            let compressed = OpenFile(path: path + ".gz")
        {
            file = compressed
            encoding = "gzip"
        } else {
            guard let plain = OpenFile(path: path) else { return .reply(.plain(.forbidden, "Forbidden\n")) }
            file = plain
        }
        return .reply(reply(for: &file, request: request, files: files, contentType: contentType, encoding: encoding))
    }

    private static func notFound(_ files: FrontConfiguration.StaticFiles) -> Outcome {
        if let fallback = files.fallback { return .fallback(upstream: fallback) }
        return .reply(.plain(.notFound, "Not Found\n"))
    }

    /// The headers every answer about this file carries (200, 206, 304).
    private static func validators(_ file: OpenFile, _ files: FrontConfiguration.StaticFiles) -> HTTPHeaders {
        var headers: HTTPHeaders = ["Last-Modified": httpDate(file.modified), "ETag": file.etag]
        if let expires = files.expires {
            let seconds = expires.nanoseconds / 1_000_000_000
            headers.add(name: "Expires", value: httpDate(currentSeconds() + Int(seconds)))
            headers.add(name: "Cache-Control", value: "max-age=\(seconds)")
        }
        if let cacheControl = files.cacheControl { headers.replaceOrAdd(name: "Cache-Control", value: cacheControl) }
        if files.gzipStatic { headers.add(name: "Vary", value: "Accept-Encoding") }
        return headers
    }

    private static func reply(
        for file: inout OpenFile, request: ClientRequest, files: FrontConfiguration.StaticFiles, contentType: String,
        encoding: String?
    ) -> Reply {
        var headers = validators(file, files)
        let requestHeaders = request.head.headers
        if Conditional.notModified(requestHeaders, etag: file.etag, modified: file.modified) {
            file.close()
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
                file.close()
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
        let handle = file.takeHandle()
        return Reply(
            status: status, headers: headers,
            body: .file(FileRegion(fileHandle: handle, readerIndex: range.lowerBound, endIndex: range.upperBound), handle))
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

    /// Whether the file's real path (symlinks resolved) is under the root's real path.
    static func staysInside(_ path: String, root: String) -> Bool {
        guard let real = realpath(path, nil) else { return false }
        defer { free(real) }
        guard let realRoot = realpath(root, nil) else { return false }
        defer { free(realRoot) }
        let file = String(cString: real)
        let base = String(cString: realRoot)
        return file == base || file.hasPrefix(base.hasSuffix("/") ? base : base + "/")
    }

    private static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
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

/// An opened regular file (O_NONBLOCK: a file swapped for a FIFO must not block the loop), its size and validators
/// taken from the open descriptor itself.
struct OpenFile {
    private var handle: NIOFileHandle?
    let size: Int
    let modified: Int
    /// nginx's ETag form: "mtime-size" in hex.
    var etag: String { "\"\(String(modified, radix: 16))-\(String(size, radix: 16))\"" }

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(fd)
            return nil
        }
        handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
        size = Int(info.st_size)
        modified = info.st_mtim.tv_sec
    }

    mutating func takeHandle() -> NIOFileHandle {
        defer { handle = nil }
        return handle!
    }

    mutating func close() {
        try? handle?.close()
        handle = nil
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
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return "application/octet-stream" }
        let name = path[path.index(after: dot)...].lowercased()
        return overrides[name] ?? byExtension[name] ?? "application/octet-stream"
    }
}
