import Formats
import Foundation
import Jobs
import TestSupport
import Testing
import Vision

@testable import DVTCommands

@Suite("dvt extract")
struct ExtractCLITests {
    @Test("writes one (H, W, C) .npy per image, records random weights, reports a corrupt image and exits nonzero")
    func extract() throws {
        let dir = temporaryDirectory("extract")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Two real photos in a nested tree plus a truncated JPEG.
        let input = dir.appendingPathComponent("in/sub")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: photos.appendingPathComponent("chelsea.jpg"), to: input.appendingPathComponent("cat.jpg"))
        try FileManager.default.copyItem(at: photos.appendingPathComponent("rocket.jpg"), to: dir.appendingPathComponent("in/rocket.jpg"))
        let jpeg = try Data(contentsOf: photos.appendingPathComponent("coffee.jpg"))
        try jpeg.prefix(jpeg.count / 3).write(to: dir.appendingPathComponent("in/broken.jpg"))
        let out = dir.appendingPathComponent("out")
        let args = [
            "extract", "--arch", "vit_small_patch14_dinov2", "--random-init", "3", "--size", "56", "70",
            "--layer", "1", "--images", dir.appendingPathComponent("in").path, "--out", out.path,
        ]
        #expect { try runDVT(args) } throws: { if case JobsError.imagesFailed(let f) = $0 { return f.count == 1 } else { return false } }
        let cat = try Npy.read(out.appendingPathComponent("sub/cat.npy"))
        #expect(cat.shape == [4, 5, 384])
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("rocket.npy").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("broken.npy").path))
        let info = try String(contentsOf: out.appendingPathComponent("extract_info.json"), encoding: .utf8)
        #expect(info.contains("RANDOM WEIGHTS"))
        // No temp files are left behind.
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: out.path).filter { $0.contains(".tmp") }
        #expect(leftovers.isEmpty)
        // The executable prints the failure in its summary and exits with a nonzero status.
        if dvtExecutable != nil {
            let (status, text) = try runExecutable(args)
            #expect(status != 0)
            #expect(text.contains("FAILED") && text.contains("broken.jpg"))
            #expect(text.contains("2 already present"))
        }
    }

    @Test("flags are validated with clear messages")
    func validation() throws {
        #expect(throws: (any Error).self) { try runDVT(["extract", "--images", "x", "--out", "y"]) }  // neither weights nor random init
        #expect(throws: (any Error).self) { try runDVT(["extract", "--random-init", "1", "--weights", "w", "--images", "x", "--out", "y"]) }
        #expect(throws: (any Error).self) {
            try runDVT(["extract", "--random-init", "1", "--arch", "no_such_model", "--images", photos.path, "--out", "/tmp/x"])
        }
    }
}
