import Foundation
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed atomic write, naming the path and the cause in plain words.
public struct AtomicFileError: Error, CustomStringConvertible, LocalizedError {
    public enum Reason: Equatable, Sendable {
        case missingDirectory
        case permissionDenied
        case noSpace
        case notADirectory
        case other(errno: Int32)
    }

    public let path: String
    public let reason: Reason
    /// What was being done when it failed (open, write, fsync, rename).
    public let step: String

    public var description: String {
        switch reason {
        case .missingDirectory:
            return "cannot write \(path): directory \((path as NSString).deletingLastPathComponent) does not exist"
        case .permissionDenied:
            return "cannot write \(path): permission denied (\(step))"
        case .noSpace:
            return "cannot write \(path): no space left on device (\(step))"
        case .notADirectory:
            return "cannot write \(path): a component of \((path as NSString).deletingLastPathComponent) is not a directory"
        case .other(let code):
            return "cannot write \(path): \(String(cString: strerror(code))) (errno \(code), \(step))"
        }
    }

    public var errorDescription: String? { description }

    package init(path: String, errno code: Int32, step: String) {
        self.path = path
        self.step = step
        switch code {
        case ENOENT: reason = .missingDirectory
        case EACCES, EPERM, EROFS: reason = .permissionDenied
        case ENOSPC, EDQUOT: reason = .noSpace
        case ENOTDIR: reason = .notADirectory
        default: reason = .other(errno: code)
        }
    }
}

/// Writes files so that readers see either the old contents or the complete new contents, never
/// a torn file: data goes to a temporary file in the destination directory, is fsync'ed, and is
/// renamed over the destination (rename is atomic within one file system); the directory is then
/// fsync'ed so the rename itself survives a crash.
public enum AtomicFile {
    /// Sequential sink handed to `write(to:_:)`'s body.
    public final class Writer {
        fileprivate let fd: Int32
        fileprivate let path: String
        public private(set) var bytesWritten: Int = 0

        fileprivate init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        /// Writes all of `bytes` (TensorCore's write(2) loop: EINTR retried, short writes resumed).
        public func write(_ data: Data) throws { try writeAll(data) }

        public func write(_ bytes: [UInt8]) throws { try writeAll(bytes) }

        /// Writes the tensor's elements as little-endian float32, straight from its storage.
        public func write(_ tensor: Tensor) throws {
            try report { () throws(FileDescriptorIO.WriteFailure) in try FileDescriptorIO.writeAll(fd, tensor) { bytesWritten += $0 } }
        }

        private func writeAll<C: ContiguousBytes>(_ bytes: C) throws {
            try report { () throws(FileDescriptorIO.WriteFailure) in try FileDescriptorIO.writeAll(fd, bytes) { bytesWritten += $0 } }
        }

        /// Runs one write, turning its failure into an AtomicFileError naming the path.
        private func report(_ body: () throws(FileDescriptorIO.WriteFailure) -> Void) throws {
            do {
                try body()
            } catch .errno(let code) {
                throw AtomicFileError(path: path, errno: code, step: "write")
            } catch .wroteNothing {
                throw AtomicFileError(path: path, errno: EIO, step: "write returned 0")
            }
        }
    }

    /// Atomically replaces `url` with `data`.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { try $0.write(data) }
    }

    /// Atomically replaces `url` with `bytes`.
    public static func write(_ bytes: [UInt8], to url: URL) throws {
        try write(to: url) { try $0.write(bytes) }
    }

    /// Atomically replaces `url` with `object` as pretty-printed JSON with sorted keys: the form
    /// of every JSON record the toolkit writes (run.json, backbone.json, probe tables, …).
    public static func writeJSON(_ object: Any, to url: URL) throws {
        try write(JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), to: url)
    }

    /// Removes temporary files that writers killed mid-write (SIGKILL, power loss) left behind
    /// under `directory` (recursively): names `.<file>.tmp-<pid>-<n>` whose process is gone.
    /// Jobs call this when they start, so a rerun after a kill leaves no partial files.
    /// Returns the paths removed.
    @discardableResult
    public static func removeStaleTemporaries(under directory: URL) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        var removed: [String] = []
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { continue }
            let parts = name[r.upperBound...].split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), UInt64(parts[1]) != nil else { continue }
            // kill(pid, 0) fails with ESRCH when no such process exists: the writer is dead.
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                let full = directory.appendingPathComponent(rel).path
                if unlink(full) == 0 { removed.append(full) }
            }
        }
        return removed
    }

    /// Atomically replaces `url` with whatever `body` streams into the writer. If `body` throws,
    /// the temporary file is removed and the destination is left untouched.
    public static func write(to url: URL, _ body: (Writer) throws -> Void) throws {
        let path = url.path
        let dir = (path as NSString).deletingLastPathComponent
        let dirPath = dir.isEmpty ? "." : dir
        let name = (path as NSString).lastPathComponent
        // Random suffix: several writers (threads or processes) may target the same file.
        let tmpPath = (dirPath as NSString).appendingPathComponent(
            ".\(name).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max) & 0xFFFF_FFFF)")
        // 0o644 before umask: an ordinary data file (mkstemp's 0o600 would surprise other users).
        let fd = open(tmpPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let code = errno
            // Report a missing directory against the destination the caller asked for.
            throw AtomicFileError(path: path, errno: code, step: "create temporary file in \(dirPath)")
        }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(tmpPath) }
        }
        try body(Writer(fd: fd, path: path))
        while fsync(fd) != 0 {
            if errno != EINTR { throw AtomicFileError(path: path, errno: errno, step: "fsync") }
        }
        closed = true
        if close(fd) != 0 && errno != EINTR {
            throw AtomicFileError(path: path, errno: errno, step: "close")
        }
        if rename(tmpPath, path) != 0 {
            throw AtomicFileError(path: path, errno: errno, step: "rename")
        }
        renamed = true
        // Persist the directory entry; failure here is not worth failing the write over (some
        // file systems do not support fsync on directories).
        let dfd = open(dirPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
