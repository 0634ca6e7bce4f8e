import DVT
import Formats
import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

/// SRT against the official recipe run in PyTorch (Tests/Fixtures/srt/make_srt_fixture.py: timm
/// features, torchvision TF.affine shifts, F.interpolate nearest, sum / views, torch.median) on
/// the tiny DINOv2 fixture with a non-square 98×84 input, dx 2, dy 1.
@Suite struct SRTConformanceTests {
    static func model() throws -> VisionTransformer {
        var cfg = ViTPresets.named("vit_small_patch14_dinov2")!
        cfg.embedDim = 64; cfg.depth = 4; cfg.heads = 4; cfg.imageSize = 70
        return try VisionTransformer(config: cfg, weights: fixturesDirectory.appendingPathComponent("vit/dinov2_small_tiny/weights.safetensors"))
    }

    @Test func matchesTheOfficialRecipe() throws {
        let model = try Self.model()
        let io = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vit/dinov2_small_tiny/io.safetensors"))
        let image = try io.tensor("input1").reshape([3, 98, 84])
        let expected = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("srt/expected.safetensors"))
        var o = SRT.Options()
        o.dx = 2; o.dy = 1; o.layer = 3; o.batchSize = 4
        let srt = try SRT(model: model, options: o)
        let views = srt.viewFeatures(image)
        // Features reach ~3 in magnitude; 1e-4 is the ViT fixtures' tolerance.
        let tol: Float = 1e-4
        expectClose(try srt.ensemble(views, resolution: .token), try expected.tensor("token_mean"), rtol: tol, atol: tol, "token mean")
        expectClose(
            try srt.ensemble(views, resolution: .token, fast: true), try expected.tensor("token_mean"), rtol: tol, atol: tol, "fast token mean")
        expectClose(
            try srt.ensemble(views, resolution: .fine(scaleFactor: 2)), try expected.tensor("fine2_mean"), rtol: tol, atol: tol, "fine ×2 mean")
        expectClose(
            try srt.ensemble(views, resolution: .fine(scaleFactor: 2), fast: true), try expected.tensor("fine2_mean"), rtol: tol, atol: tol,
            "fast fine ×2")
        var om = o
        om.aggregate = .median
        expectClose(try SRT(model: model, options: om).ensemble(views), try expected.tensor("token_median"), rtol: tol, atol: tol, "token median")
        var ou = o
        ou.uniform = true
        expectClose(
            try SRT(model: model, options: ou).ensemble(views), try expected.tensor("uniform_token_mean"), rtol: tol, atol: tol, "uniform token mean")
    }
}
