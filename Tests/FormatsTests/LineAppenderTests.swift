import Foundation
import TestSupport
import Testing

@testable import Formats

/// Issue 18, items 3 and 9: appends are whole lines or nothing, a torn last line is cut before
/// the next record, and a full disk is a clear error (it used to trap in FileHandle.write).
@Suite("Line appender and file lock")
struct LineAppenderTests {
    @Test("a torn last line is cut before the next record")
    func tornLine() throws {
        let url = temporaryDirectory("lines").appendingPathComponent("lines.jsonl")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try Data("{\"a\":1}\n{\"cosi".utf8).write(to: url)
        try LineAppender.append(Data("{\"b\":2}\n".utf8), to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == "{\"a\":1}\n{\"b\":2}\n")
    }

    @Test("a full disk gives 'no space left on device' naming the file")
    func fullDisk() throws {
        // /dev/full answers every write with ENOSPC: the disk-full path without a tmpfs.
        #expect { try LineAppender.append(Data("{\"x\":1}\n".utf8), to: URL(fileURLWithPath: "/dev/full")) } throws: {
            "\($0)".contains("cannot write /dev/full: no space left on device")
        }
    }

    @Test("a held lock is refused until its holder lets go")
    func lock() throws {
        let url = temporaryDirectory("lock").appendingPathComponent(".lock")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        var first = try FileLock.tryAcquire(url)
        #expect(first != nil)
        #expect(try FileLock.tryAcquire(url) == nil)
        first = nil
        #expect(try FileLock.tryAcquire(url) != nil)
    }
}
