import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a path is, read with `stat` and never by opening it: opening a FIFO for reading blocks
/// until a writer appears, and `/dev/zero` never ends. Foundation on Linux
/// reports FIFOs and sockets only as "unknown", so the mode bits are read directly.
public enum FileKind: Equatable, Sendable {
    case regular(size: Int)
    case directory
    case fifo
    case device
    case socket
    case missing
    case other

    public static func of(_ path: String) -> FileKind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .regular(size: Int(st.st_size))
        case S_IFDIR: return .directory
        case S_IFIFO: return .fifo
        case S_IFCHR, S_IFBLK: return .device
        case S_IFSOCK: return .socket
        default: return .other
        }
    }

    /// Words for an error message: "a FIFO", "a directory", ….
    public var noun: String {
        switch self {
        case .regular: return "a regular file"
        case .directory: return "a directory"
        case .fifo: return "a FIFO (named pipe)"
        case .device: return "a device"
        case .socket: return "a socket"
        case .missing: return "missing"
        case .other: return "not a regular file"
        }
    }

    /// Throws `makeError(message)` unless `path` is a regular file; returns its size.
    public static func requireRegular(_ path: String, what: String,
                                      _ makeError: (String) -> Error) throws -> Int {
        switch of(path) {
        case .regular(let size): return size
        case .missing: throw makeError("cannot read \(what) \(path): no such file")
        case let kind: throw makeError("cannot read \(what) \(path): it is \(kind.noun), not a regular file")
        }
    }
}
