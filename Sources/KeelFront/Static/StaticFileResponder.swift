#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1

/// Plain static file serving for `static = "DIR"` routes: the route prefix is stripped, the rest is percent-decoded
/// and looked up under DIR; no path may leave DIR. Directories answer with their index.html, or a 301 adding the
/// missing "/" as nginx does. Files go out with sendfile, with Content-Type, Content-Length and Last-Modified.
enum StaticFileResponder {
    static func reply(root: String, routePrefix: String, request: ClientRequest) -> Reply {
        let method = request.head.method
        guard method == .GET || method == .HEAD else {
            var reply = Reply.plain(.methodNotAllowed, "Method Not Allowed\n")
            reply.headers.add(name: "Allow", value: "GET, HEAD")
            return reply
        }
        guard let relative = relativePath(request.rawPath, routePrefix: routePrefix) else {
            return .plain(.badRequest, "Bad Request\n")
        }
        var path = root + "/" + relative
        var info = stat()
        guard stat(path, &info) == 0 else { return errnoReply(errno) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard relative.isEmpty || relative.hasSuffix("/") else {
                let query = request.query.isEmpty ? "" : "?\(request.query)"
                return .redirect(.movedPermanently, String(request.rawPath) + "/" + query)
            }
            path += "index.html"
            guard stat(path, &info) == 0 else { return errno == ENOENT ? .plain(.forbidden, "Forbidden\n") : errnoReply(errno) }
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .plain(.forbidden, "Forbidden\n") }
        // O_NONBLOCK: a file swapped for a FIFO since stat() must not block the event loop; the size and type that
        // count are the open file's own.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return errnoReply(errno) }
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .plain(.forbidden, "Forbidden\n")
        }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
        let size = Int(info.st_size)
        let headers: HTTPHeaders = [
            "Content-Type": MediaTypes.type(forPath: path),
            "Content-Length": String(size),
            "Last-Modified": httpDate(info.st_mtim.tv_sec),
        ]
        return Reply(status: .ok, headers: headers, body: .file(FileRegion(fileHandle: handle, readerIndex: 0, endIndex: size), handle))
    }

    /// The path under the root, decoded; nil when it is malformed or would climb out ("..", encoded or not).
    static func relativePath(_ rawPath: Substring, routePrefix: String) -> String? {
        guard rawPath.hasPrefix(routePrefix), let decoded = percentDecoded(rawPath.dropFirst(routePrefix.count)) else { return nil }
        var segments: [Substring] = []
        for segment in decoded.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." { return nil }
            segments.append(segment)
        }
        let joined = segments.joined(separator: "/")
        return decoded.hasSuffix("/") && !joined.isEmpty ? joined + "/" : joined
    }

    private static func errnoReply(_ code: Int32) -> Reply {
        switch code {
        case ENOENT, ENOTDIR, ENAMETOOLONG: .plain(.notFound, "Not Found\n")
        case EACCES, EPERM: .plain(.forbidden, "Forbidden\n")
        default: .plain(.internalServerError, "Internal Server Error\n")
        }
    }

    /// RFC 9110 IMF-fixdate: "Tue, 24 Nov 2026 10:00:00 GMT".
    static func httpDate(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 40)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Content types by extension: the common part of nginx's mime.types.
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
        "map": "application/json",
    ]

    static func type(forPath path: String) -> String {
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return "application/octet-stream" }
        return byExtension[path[path.index(after: dot)...].lowercased()] ?? "application/octet-stream"
    }
}
