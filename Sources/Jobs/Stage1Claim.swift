import Foundation
import Settings
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Many stage-1 processes can share one output folder: Slurm array tasks, and two tasks on the
// same shard when a requeued task overlaps its predecessor. Two small pieces keep that safe:
// a per-image claim (so one process fits an image while the others move on) and a manifest
// append under an exclusive lock (so lines never interleave and a torn line left by a killed or
// disk-full writer is cut before the next record). Both use flock(2), which the kernel drops when
// the holder dies (SIGKILL, scancel), so a dead process never leaves a stale lock.

/// An exclusive, non-blocking claim on one image of a run folder: `OUT/.claims/<rel>.lock`.
/// The lock file itself is left in place (an empty marker); only the flock matters.
public final class ImageClaim {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// The claim, or nil when another live process holds it.
    public static func tryAcquire(root: URL, stem: String) throws -> ImageClaim? {
        let url = root.appendingPathComponent(".claims/\(stem).lock")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigError("cannot open the claim file \(url.path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK { return nil }
            throw ConfigError("cannot lock the claim file \(url.path): \(String(cString: strerror(code)))")
        }
        return ImageClaim(fd: fd)
    }
}

/// The stage-1 manifest, `stage1_manifest.jsonl`: one JSON object per line.
public enum Stage1Manifest {
    /// Relative stems with an `"status": "ok"` record. Lines that are not whole JSON objects are
    /// ignored (a torn last line is cut by the next append).
    public static func completed(_ url: URL) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        var done = Set<String>()
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  o["status"] as? String == "ok", let stem = o["image"] as? String else { continue }
            done.insert(stem)
        }
        return done
    }
}

/// Appends one JSON object as a line, whole or not at all: under an exclusive flock on the file,
/// a trailing partial line (from a writer killed mid-write or a full disk) is truncated first,
/// the record goes out in one write, and a short write is rolled back, reporting its own errno.
public func appendJSONLine(_ object: [String: Any], to url: URL) throws {
    let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) + Data("\n".utf8)
    let fd = open(url.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    func fail(_ what: String, _ code: Int32) -> ConfigError {
        ConfigError("cannot append to \(url.path): \(what): \(String(cString: strerror(code)))")
    }
    guard fd >= 0 else { throw fail("open", errno) }
    defer { close(fd) }
    while flock(fd, LOCK_EX) != 0 { if errno != EINTR { throw fail("lock", errno) } }
    let size = lseek(fd, 0, SEEK_END)
    guard size >= 0 else { throw fail("seek", errno) }
    let whole = try wholeLinesLength(fd: fd, size: size)
    if whole < size && ftruncate(fd, whole) != 0 { throw fail("truncate a torn last line", errno) }
    let written = line.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
    if written != line.count {
        let code = written < 0 ? errno : ENOSPC  // a short write without an errno is a full disk
        _ = ftruncate(fd, whole)
        throw fail("write", code)
    }
}

/// The length of the file's prefix that ends with a newline (0 when there is none): what is left
/// after cutting a torn last line. Reads backwards in 4 KB blocks.
private func wholeLinesLength(fd: Int32, size: off_t) throws -> off_t {
    var end = size
    var block = [UInt8](repeating: 0, count: 4096)
    while end > 0 {
        let start = max(0, end - off_t(block.count))
        let n = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(end - start), start) }
        guard n == Int(end - start) else { throw ConfigError("cannot read the manifest tail: \(String(cString: strerror(errno)))") }
        if let i = block[0..<n].lastIndex(of: UInt8(ascii: "\n")) { return start + off_t(i) + 1 }
        end = start
    }
    return 0
}
