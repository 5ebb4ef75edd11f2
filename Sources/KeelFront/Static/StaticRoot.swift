#if canImport(Glibc)
import Glibc
#endif
import CKeelSys
import NIOConcurrencyHelpers

/// A static route's directory, opened once per configuration load. Files are opened beneath its descriptor with
/// openat2(RESOLVE_BENEATH): the kernel refuses any path or relative symlink that climbs out, with no per-component
/// readlink. Only what it refuses (an absolute symlink, or one leading out) takes the slow path: realpath, then
/// inside the root's real path or 403, as before.
final class StaticRoot: Sendable {
    enum Lookup {
        case file(StaticFile)
        case directory
        case missing
        /// A symlink leading out of the root (without follow_symlinks).
        case outside
        case failed(errno: Int32)
    }

    let path: String
    private let descriptor: Int32
    /// The root with its own symlinks resolved: what "inside" means on the slow path.
    private let realPath: String?

    init(path: String) {
        self.path = path
        self.descriptor = Glibc.open(path, keel_o_path | O_DIRECTORY | O_CLOEXEC)
        if let real = realpath(path, nil) {
            realPath = String(cString: real)
            free(real)
        } else {
            realPath = nil
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Whether this kernel has openat2 (Linux 5.6+); learnt from the first call.
    private static let hasOpenat2 = NIOLockedValueBox<Bool?>(nil)

    /// Opens `relative` ("" for the root itself, never starting with "/") for reading.
    func open(_ relative: String, symlinksOutside: Bool) -> Lookup {
        guard descriptor >= 0 else { return .failed(errno: ENOENT) }
        let name = relative.isEmpty ? "." : relative
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK
        if symlinksOutside { return lookup(openat(descriptor, name, flags)) }
        if Self.hasOpenat2.withLockedValue({ $0 }) != false {
            let fd = keel_openat_beneath(descriptor, name, flags, 1)
            if fd >= 0 || errno != ENOSYS {
                Self.hasOpenat2.withLockedValue { $0 = true }
                if fd < 0 && errno == EXDEV { return openOutsideCheck(relative) }
                return lookup(fd)
            }
            Self.hasOpenat2.withLockedValue { $0 = false }
        }
        return openOutsideCheck(relative)
    }

    /// The slow path: resolve every symlink, serve only what stays inside the root's real path.
    private func openOutsideCheck(_ relative: String) -> Lookup {
        guard let realPath, let resolved = realpath(path + "/" + relative, nil) else {
            return errno == ENOENT || errno == ENOTDIR ? .missing : .failed(errno: errno)
        }
        let file = String(cString: resolved)
        free(resolved)
        guard file == realPath || file.hasPrefix(realPath.hasSuffix("/") ? realPath : realPath + "/") else { return .outside }
        return lookup(Glibc.open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW))
    }

    private func lookup(_ fd: Int32) -> Lookup {
        guard fd >= 0 else {
            switch errno {
            case ENOENT, ENOTDIR: return .missing
            case EXDEV: return .outside
            default: return .failed(errno: errno)
            }
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            return .failed(errno: code)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return .file(StaticFile(descriptor: fd, size: Int(info.st_size), modified: info.st_mtim.tv_sec))
        case S_IFDIR:
            close(fd)
            return .directory
        default:
            close(fd)  // FIFOs, devices, sockets are never served
            return .failed(errno: EACCES)
        }
    }
}
