import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import DVT

/// SRT on backbones without a resampled pos_embed (RoPE) or without a class token, at a
/// non-square input and an overlapping stride: the batched ensemble equals the one-view-at-a-time
/// recipe, so every shifted view got the positions of its own grid.
@Suite struct SRTFamiliesTests {
    /// Tiny random ViTs of the DINOv3 (RoPE, registers, no pos_embed), EVA-02 (RoPE on top of
    /// pos_embed, SwiGLU, q/k/v) and SigLIP (no prefix tokens) families.
    static func tiny(_ family: String) -> VisionTransformer {
        var cfg = ViTPresets.named(family)!
        (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize, cfg.mlpHidden) = (32, 2, 2, 64, 48)
        return VisionTransformer(config: cfg, seed: 4)
    }

    @Test(arguments: ["vit_small_patch16_dinov3", "eva02_base_patch16_clip_224", "vit_base_patch16_siglip_224"])
    func pixelPathMatchesTheNaiveRecipe(_ family: String) throws {
        let model = Self.tiny(family)
        let image = randn([3, 48, 64], seed: 12, requiresGrad: false)
        let srt = try SRT(model: model, options: srtOptions(dx: 1, dy: 2, stride: 8, batch: 4))
        let ours = try srt.run(image, resolution: .pixel).output
        let naive = naiveSRTPixelMean(model, image, shifts: srt.shifts, layer: 1, stride: 8)
        #expect(ours.shape == [5 * 8, 7 * 8, 32])  // the stride-8 grid, nearest-upsampled by the stride
        expectClose(ours, naive, rtol: 1e-4, atol: 1e-5, "\(family): batched SRT vs one view at a time")
        // The grid of a stride-8 view: (H − 16)/8 + 1 by (W − 16)/8 + 1.
        #expect(srt.viewFeatures(image).raw.shape == [5, 7, 32])
    }
}
