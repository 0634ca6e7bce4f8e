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
        try "chelsea.jpg\nrocket.jpg\n".write(to: dir.appendingPathComponent("train.txt"), atomically: true, encoding: .utf8)
        try "camera.jpg\n".write(to: dir.appendingPathComponent("val.txt"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("out")
        let yaml = """
            model: \(model)
            random_init: 3
            input_size: [48, 64]
            layer: 1
            data_root: \(photos.path)
            data_list: \(dir.appendingPathComponent("train.txt").path)
            val_list: \(dir.appendingPathComponent("val.txt").path)
            output_dir: \(out.path)
            seed: 1
            stage1:
              num_views: 2
              num_iters: 10
              pixel_bsz: 16
              n_levels: 2
              log2_hashmap_size: 6
              max_resolution: 16
              print_freq: 10
            stage2:
              num_iters: 4
              batch_size: 2
              save_freq: 2
              val_freq: 2
              print_freq: 2
            srt:
              dx: 1
              dy: 1
            """
        let cfg = dir.appendingPathComponent("tiny.yaml")
        try yaml.write(to: cfg, atomically: true, encoding: .utf8)
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
