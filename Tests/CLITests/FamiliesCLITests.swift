import Formats
import Foundation
import TestSupport
import Testing
import Vision

@testable import DVTCommands

/// The whole pipeline (stage 1 with its random views, SRT with its shifted views, stage 2, metrics)
/// on the backbones whose positions are not (only) a resampled `pos_embed` (DINOv3: RoPE from
/// each input's own grid, no pos_embed; EVA-02: RoPE on top of pos_embed, SwiGLU) or that have
/// no class token (SigLIP), on a non-square input.
@Suite("dvt run on RoPE and no-class-token backbones")
struct FamiliesCLITests {
    @Test(
        "stage 1, SRT and stage 2 run end to end",
        arguments: [
            "vit_small_patch16_dinov3.lvd1689m", "eva02_base_patch16_clip_224.merged2b",
            "vit_base_patch16_siglip_224.webli",
        ])
    func pipeline(_ model: String) throws {
        let dir = temporaryDirectory("families")
        defer { try? FileManager.default.removeItem(at: dir) }
        var run = TinyRun(dir)
        run.model = model
        run.randomInit = 3
        run.inputSize = [48, 64]
        run.stage1.pixelBsz = 16
        let out = run.out
        let cfg = try run.write()
        try runDVT(["run", cfg.path, "--quiet", "--threads", "1"])
        let dim = ViTPresets.named(model)!.embedDim
        for tree in ["raw_features", "denoised_features", "srt_features", "stage2_features"] {
            let name = tree == "stage2_features" ? "camera" : "rocket"
            let map = try Npy.read(out.appendingPathComponent("\(tree)/\(model)/\(name).npy"))
            #expect(map.shape == [3, 4, dim], "\(tree): \(map.shape)")
            let finite = map.scalars.allSatisfy { $0.isFinite }
            #expect(finite, "\(tree) has non-finite values")
        }
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("stage2/denoiser.safetensors").path))
    }
}
