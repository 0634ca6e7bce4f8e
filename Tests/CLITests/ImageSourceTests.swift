import Foundation
import TestSupport
import Testing

@testable import Jobs

/// Issue 18: list entries that escape the root, inputs whose outputs collide, empty sources,
/// names with spaces, and a negative Kubernetes index.
@Suite("Image sources")
struct ImageSourceTests {
    func folder(_ files: [String], list: String? = nil) throws -> URL {
        let dir = temporaryDirectory("src")
        for f in files {
            let url = dir.appendingPathComponent(f)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data([0xFF, 0xD8, 0xFF]).write(to: url)
        }
        if let list { try Data(list.utf8).write(to: dir.appendingPathComponent("list.txt")) }
        return dir
    }

    @Test("entries that climb out of the list's root are refused; ones that stay inside are normalised")
    func pathEscapes() throws {
        let dir = try folder(["sub/a.jpg"], list: "../victim.jpg\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { _ = try ImageSource.items(from: dir.appendingPathComponent("list.txt").path) } throws: {
            "\($0)".contains("list.txt:1") && "\($0)".contains("resolves outside the list's root")
        }
        try Data("sub/../sub/./a.jpg\n".utf8).write(to: dir.appendingPathComponent("list.txt"))
        #expect(try ImageSource.items(from: dir.appendingPathComponent("list.txt").path).map(\.relativeStem) == ["sub/a"])
        try Data("sub/../../../x.jpg\n".utf8).write(to: dir.appendingPathComponent("list.txt"))
        #expect { _ = try ImageSource.items(from: dir.appendingPathComponent("list.txt").path) } throws: {
            if case JobsError.input = $0 { return true } else { return false }
        }
    }

    @Test("inputs whose outputs would share a name are refused, all of them named")
    func collisions() throws {
        let dir = try folder(["a.jpg", "a.png", "a.JPEG", "b.jpg"])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { _ = try ImageSource.items(from: dir.path) } throws: {
            "\($0)".contains("a: ") && "\($0)".contains("a.jpg") && "\($0)".contains("a.png") && "\($0)".contains("a.JPEG")
        }
    }

    @Test("an empty folder or list is an error, not '0 written'")
    func empty() throws {
        let dir = try folder([], list: "# nothing\n\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { _ = try ImageSource.items(from: dir.appendingPathComponent("list.txt").path) } throws: { "\($0)".contains("holds no images") }
        let sub = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        #expect { _ = try ImageSource.items(from: sub.path) } throws: { "\($0)".contains("holds no images") }
    }

    @Test("names with spaces: tab-separated and quoted list lines; VOC's 'name label' still works")
    func spaces() throws {
        let dir = try folder(
            ["my photo.jpg", "two words/x y.png", "plain.jpg"],
            list: "my photo.jpg\t1\n\"two words/x y.png\" 0\nplain.jpg 1\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let items = try ImageSource.items(from: dir.appendingPathComponent("list.txt").path)
        #expect(items.map(\.relativeStem) == ["my photo", "two words/x y", "plain"])
    }

    @Test("a negative JOB_COMPLETION_INDEX is refused")
    func negativeIndex() {
        #expect { _ = try ShardSpec.fromEnvironment(["JOB_COMPLETION_INDEX": "-1", "DVT_NUM_SHARDS": "2"]) } throws: {
            "\($0)".contains("JOB_COMPLETION_INDEX=-1 is negative")
        }
    }
}
