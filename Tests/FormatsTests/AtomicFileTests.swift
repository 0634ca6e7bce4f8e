import Formats
import Foundation
import TestSupport
import Testing

@Suite("AtomicFile")
struct AtomicFileTests {
    @Test func replacesContentsAndLeavesNoTemporaries() throws {
        let dir = temporaryDirectory("atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("out.bin")
        try AtomicFile.write(Data("first".utf8), to: url)
        #expect(try Data(contentsOf: url) == Data("first".utf8))
        try AtomicFile.write(Array("second, longer".utf8), to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == "second, longer")
        // Streaming writer counts bytes.
        try AtomicFile.write(to: url) { w in
            try w.write(Data([1, 2, 3]))
            try w.write([4, 5])
            #expect(w.bytesWritten == 5)
        }
        #expect(try Data(contentsOf: url) == Data([1, 2, 3, 4, 5]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.bin"])
    }

    @Test func failedBodyKeepsTheOldFile() throws {
        struct Boom: Error {}
        let dir = temporaryDirectory("atomic-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("keep.txt")
        try AtomicFile.write(Data("original".utf8), to: url)
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: url) { w in
                try w.write(Data("partial".utf8))
                throw Boom()
            }
        }
        #expect(try String(contentsOf: url, encoding: .utf8) == "original")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["keep.txt"])
    }

    @Test func missingDirectoryIsNamed() throws {
        let url = URL(fileURLWithPath: "/nonexistent-dvt-dir/sub/file.bin")
        do {
            try AtomicFile.write(Data([1]), to: url)
            Issue.record("write into a missing directory succeeded")
        } catch let e as AtomicFileError {
            #expect(e.reason == .missingDirectory)
            #expect(e.description == "cannot write /nonexistent-dvt-dir/sub/file.bin: directory /nonexistent-dvt-dir/sub does not exist")
        }
    }

    @Test func fileInPlaceOfDirectoryIsReported() throws {
        let dir = temporaryDirectory("atomic-notdir")
        defer { try? FileManager.default.removeItem(at: dir) }
        let blocker = dir.appendingPathComponent("plain")
        try AtomicFile.write(Data([0]), to: blocker)
        do {
            try AtomicFile.write(Data([1]), to: blocker.appendingPathComponent("x"))
            Issue.record("write below a regular file succeeded")
        } catch let e as AtomicFileError {
            #expect(e.reason == .notADirectory)
            #expect(e.description.contains(blocker.path))
        }
    }

    // Root bypasses permission bits, so this can only be observed as an ordinary user.
    @Test(.enabled(if: geteuid() != 0, "running as root: directory permissions are not enforced"))
    func readOnlyDirectoryIsPermissionDenied() throws {
        let dir = temporaryDirectory("atomic-ro")
        defer {
            chmod(dir.path, 0o755)
            try? FileManager.default.removeItem(at: dir)
        }
        chmod(dir.path, 0o555)
        do {
            try AtomicFile.write(Data([1]), to: dir.appendingPathComponent("f"))
            Issue.record("write into a read-only directory succeeded")
        } catch let e as AtomicFileError {
            #expect(e.reason == .permissionDenied)
            #expect(e.description.contains("permission denied"))
        }
    }

    /// ENOSPC and EACCES cannot be provoked portably without privileges or a full disk; check
    /// that the errno mapping produces the promised messages.
    @Test func errnoMessages() {
        let full = AtomicFileError(path: "/data/x.st", errno: ENOSPC, step: "write")
        #expect(full.reason == .noSpace)
        #expect(full.description == "cannot write /data/x.st: no space left on device (write)")
        let denied = AtomicFileError(path: "/data/x.st", errno: EACCES, step: "create temporary file in /data")
        #expect(denied.reason == .permissionDenied)
        #expect(denied.description.contains("/data/x.st: permission denied"))
        let other = AtomicFileError(path: "/d/f", errno: EIO, step: "fsync")
        #expect(other.reason == .other(errno: EIO))
        #expect(other.description.contains("/d/f"))
        #expect(other.description.contains("fsync"))
    }
}

@Suite("Stale temporaries")
struct StaleTemporaryTests {
    @Test("temporaries of dead writers are removed; live writers' and ordinary files are kept")
    func cleanup() throws {
        let dir = temporaryDirectory("stale").appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        // A PID that cannot exist (above Linux's pid_max limit of 2^22).
        let dead = dir.appendingPathComponent(".a.npy.tmp-99999999-123")
        let live = dir.appendingPathComponent(".b.npy.tmp-\(getpid())-5")
        let normal = dir.appendingPathComponent("c.npy")
        for u in [dead, live, normal] { try Data([1]).write(to: u) }
        let removed = AtomicFile.removeStaleTemporaries(under: dir.deletingLastPathComponent())
        #expect(removed == [dead.path])
        #expect(!FileManager.default.fileExists(atPath: dead.path))
        #expect(FileManager.default.fileExists(atPath: live.path) && FileManager.default.fileExists(atPath: normal.path))
    }
}
