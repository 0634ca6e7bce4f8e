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
    public static func requireRegular(
        _ path: String, what: String,
        _ makeError: (String) -> Error
    ) throws -> Int {
        switch of(path) {
        case .regular(let size): return size
        case .missing: throw makeError("cannot read \(what) \(path): no such file")
        case let kind: throw makeError("cannot read \(what) \(path): it is \(kind.noun), not a regular file")
        }
    }
}

/// Relative paths read from list files (image lists, dataset split files), which decide where
/// outputs are written: an entry may not climb out of the folder it is resolved against.
public enum RelativePath {
    /// `rel` with `.` and `..` resolved, or nil when it climbs above its root, is absolute, or
    /// is empty.
    public static func normalisedInside(_ rel: String) -> String? {
        guard !rel.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for c in rel.split(separator: "/") where c != "." {
            if c == ".." {
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
            } else {
                parts.append(c)
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: "/")
    }
}
