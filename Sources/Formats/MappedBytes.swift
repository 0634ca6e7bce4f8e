import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An immutable byte region: a read-only memory map of a file, or a private copy of some bytes.
/// Parsers take one of these so the same validation code runs on files and on in-memory data
/// (the fuzz tests feed thousands of mutated buffers without touching the disk).
package final class ReadOnlyBytes: @unchecked Sendable {
    package let base: UnsafeRawPointer
    package let count: Int
    private let release: () -> Void

    package var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    private init(base: UnsafeRawPointer, count: Int, release: @escaping () -> Void) {
        self.base = base
        self.count = count
        self.release = release
    }

    deinit { release() }

    /// Copies `bytes` into a private allocation.
    package convenience init(copying bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 16)
        if n > 0 { p.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        self.init(base: UnsafeRawPointer(p), count: n, release: { p.deallocate() })
    }

    package static func copy(_ data: Data) -> ReadOnlyBytes {
        data.withUnsafeBytes { ReadOnlyBytes(copying: $0) }
    }

    /// Maps `url` read-only. The mapping is private, so later writes by others to the file are not
    /// guaranteed to be seen; truncating the file while mapped would fault (SIGBUS) on access,
    /// which no reader of memory-mapped files can prevent; we write files atomically (rename)
    /// precisely so that never happens to our own files.
    package static func map(_ url: URL) throws -> ReadOnlyBytes {
        let path = url.path
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever; the
        // file type is checked on the descriptor right after (no window between check and open).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            throw FileReadError(path: path, message: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw FileReadError(path: path, message: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) != S_IFREG {
            let kind = FileKind.of(path)
            throw FileReadError(path: path, message: "it is \(kind.noun), not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            return ReadOnlyBytes(copying: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FileReadError(path: path, message: "mmap failed: \(String(cString: strerror(errno)))")
        }
        return ReadOnlyBytes(base: UnsafeRawPointer(p), count: size, release: { munmap(p, size) })
    }
}

/// A file could not be opened or mapped.
public struct FileReadError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let message: String
    public var description: String { "cannot read \(path): \(message)" }
    public var errorDescription: String? { description }
}
