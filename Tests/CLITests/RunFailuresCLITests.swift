import Foundation
import Jobs
import TestSupport
import Testing

@testable import DVTCommands

/// Issue 18, item 5: `dvt run` exited 0 after a failed image, and after the image was fixed a
/// rerun kept the denoiser trained without it.
@Suite("dvt run with failed images")
struct RunFailuresCLITests {
    @Test("a failed image makes the exit non-zero; a rerun after the fix refuses the stale denoiser")
    func failedImage() throws {
        let dir = temporaryDirectory("run-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for name in ["chelsea", "rocket"] {
            try FileManager.default.copyItem(at: photos.appendingPathComponent("\(name).jpg"), to: images.appendingPathComponent("\(name).jpg"))
        }
        try Data([0xFF, 0xD8, 0xFF, 0x00, 0x01]).write(to: images.appendingPathComponent("bad.jpg"))  // a truncated JPEG
        var run = TinyRun(dir)
        run.inputSize = [28, 28]
        run.dataRoot = images
        run.train = ["chelsea.jpg", "rocket.jpg", "bad.jpg"]
        run.val = nil
        run.seed = nil
        run.stage1.pixelBsz = 16
        run.stage2 = TinyRun.Stage2(numIters: 2, batchSize: 2, every: 2)
        run.srt = false
        let out = run.out
        let cfg = try run.write()
        let args = ["run", cfg.path, "--quiet", "--threads", "1"]
        #expect { try runDVT(args) } throws: { "\($0)".contains("1 image(s) failed") && "\($0)".contains("bad.jpg") }
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("stage2/denoiser.safetensors").path))

        // The image is fixed: the denoiser on disk no longer matches what this run would train.
        try FileManager.default.removeItem(at: images.appendingPathComponent("bad.jpg"))
        try FileManager.default.copyItem(at: photos.appendingPathComponent("coffee.jpg"), to: images.appendingPathComponent("bad.jpg"))
        #expect { try runDVT(args) } throws: { "\($0)".contains("was trained on 2 image(s), this run has 3") && "\($0)".contains("new: bad") }
        // As the message says: remove stage2/ and the rerun retrains on all three, exit 0.
        try FileManager.default.removeItem(at: out.appendingPathComponent("stage2"))
        try runDVT(args)
        try runDVT(args)  // and a further rerun skips stage 2: its recorded inputs match
    }
}
