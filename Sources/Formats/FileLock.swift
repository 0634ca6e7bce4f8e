import Foundation
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Files that several processes touch at once: stage-1 tasks sharing an output folder (Slurm
// arrays, requeued tasks), and a second `dvt stage2` started on a folder already in use. Both
// pieces use flock(2), which the kernel drops when the holder dies (SIGKILL, scancel), so a dead
// process never leaves a stale lock.

/// An exclusive, non-blocking lock on `url` (created if needed, left in place as an empty marker;
/// only the flock matters). Released when the value is deallocated.
public final class FileLock {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// The lock, or nil when another live process holds it.
    public static func tryAcquire(_ url: URL) throws -> FileLock? {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AtomicFileError(path: url.path, errno: errno, step: "open the lock file") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK { return nil }
            throw AtomicFileError(path: url.path, errno: code, step: "lock")
        }
        return FileLock(fd: fd)
    }
}

/// Appends whole lines to a log-like file (a manifest, metrics.jsonl), whole or not at all: under
/// an exclusive flock, a trailing partial line (from a writer killed mid-write or a full disk) is
/// cut first, the line goes out in one write, and a short write is rolled back and reported with
/// its own errno — never the stale one a later call left behind.
public enum LineAppender {
    public static func append(_ line: Data, to url: URL) throws {
        precondition(line.last == UInt8(ascii: "\n"), "a line ends with a newline")
        let fd = open(url.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AtomicFileError(path: url.path, errno: errno, step: "open for append") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 { if errno != EINTR { throw AtomicFileError(path: url.path, errno: errno, step: "lock") } }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw AtomicFileError(path: url.path, errno: errno, step: "seek") }
        let whole = try wholeLinesLength(fd: fd, size: size, path: url.path)
        if whole < size && ftruncate(fd, whole) != 0 { throw AtomicFileError(path: url.path, errno: errno, step: "cut a torn last line") }
        let written = FileDescriptorIO.writeOnce(fd, line)
        if written != line.count {
            let code = written < 0 ? errno : ENOSPC  // a short write without an errno is a full disk
            _ = ftruncate(fd, whole)
            throw AtomicFileError(path: url.path, errno: code, step: "append")
        }
    }

    /// The length of the file's prefix that ends with a newline (0 when there is none): what is
    /// left after cutting a torn last line. Reads backwards in 4 KB blocks.
    static func wholeLinesLength(fd: Int32, size: off_t, path: String) throws -> off_t {
        var end = size
        let blockSize: off_t = 4096
        while end > 0 {
            let start = max(0, end - blockSize)
            let block = FileDescriptorIO.read(fd, count: Int(end - start), at: start)
            guard let block, block.count == Int(end - start) else { throw AtomicFileError(path: path, errno: errno, step: "read the tail") }
            if let i = block.lastIndex(of: UInt8(ascii: "\n")) { return start + off_t(i) + 1 }
            end = start
        }
        return 0
    }
}
