import Formats
import Foundation
import NN
import Testing
import TensorCore
import TestSupport
@testable import Vision

/// timm conformance: every family in Tests/Fixtures/vit, every case, every listed layer, with
/// and without the final norm, plus the prefix tokens (tolerance from each meta.json:
/// max abs error <= 1e-4 · max(1, max |expected|)).
@Suite("ViT matches timm")
struct ViTConformanceTests {
    static let families = ["dinov2_small_tiny", "dinov2_reg4_tiny", "dinov2_stride7_tiny", "vit_b16_tiny",
                           "deit3_b16_tiny", "clip_b16_tiny"]

    /// The architecture a fixture was made with: the preset of its timm family, resized.
    static func config(_ meta: [String: Any]) throws -> ViTConfig {
        let arch = meta["timm_arch"] as! String
        let kw = meta["timm_kwargs"] as! [String: Any]
        var base: ViTConfig
        if arch.contains("clip") {
            base = ViTPresets.named("vit_base_patch16_clip_224.openai")!
            base.activation = arch.contains("quickgelu") ? .quickGelu : .gelu
        } else if arch.contains("reg4_dinov2") {
            base = ViTPresets.named("vit_small_patch14_reg4_dinov2")!
        } else if arch.contains("dinov2") {
            base = ViTPresets.named("vit_small_patch14_dinov2")!
        } else if arch.hasPrefix("deit3") {
            base = ViTPresets.named("deit3_base_patch16_224")!
        } else {
            base = ViTPresets.named("vit_base_patch16_224.dino")!
        }
        base.name = arch
        base.patchSize = meta["patch_size"] as! Int
        base.embedDim = kw["embed_dim"] as! Int
        base.depth = kw["depth"] as! Int
        base.heads = kw["num_heads"] as! Int
        base.imageSize = kw["img_size"] as! Int
        #expect(base.registerTokens == meta["num_reg_tokens"] as! Int, "\(arch): register tokens")
        #expect(base.noEmbedClass == meta["no_embed_class"] as! Bool, "\(arch): no_embed_class")
        #expect(base.prefixTokens == meta["num_prefix_tokens"] as! Int, "\(arch): prefix tokens")
        return base
    }

    static func check(_ actual: Tensor, _ expected: Tensor, _ what: String) {
        #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape) vs \(expected.shape)")
        guard actual.shape == expected.shape else { return }
        let e = expected.scalars, a = actual.scalars
        let tol = 1e-4 * max(1, e.map { abs($0) }.max() ?? 0)
        var worst: Float = 0
        for i in 0..<e.count { worst = max(worst, abs(a[i] - e[i])) }
        #expect(worst <= tol, "\(what): max abs error \(worst) > \(tol)")
    }

    @Test("features, prefix tokens, resampled position embeddings and stride", arguments: families)
    func family(_ name: String) throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/\(name)")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
        let cfg = try Self.config(meta)
        let model = try VisionTransformer(config: cfg, weights: dir.appendingPathComponent("weights.safetensors"))
        #expect(model.randomInitSeed == nil)
        let io = try SafeTensorsFile(url: dir.appendingPathComponent("io.safetensors"))
        let layers = meta["layers"] as! [Int]
        let stride = meta["stride"] as! Int
        for case_ in meta["cases"] as! [[String: Any]] {
            let input = case_["input"] as! String
            let x = try io.tensor(input)
            let grid = case_["grid"] as! [Int]
            #expect(model.grid(height: x.shape[2], width: x.shape[3], stride: stride) == (grid[0], grid[1]))
            let normed = model.features(x, layers: layers, norm: true, stride: stride)
            let raw = model.features(x, layers: layers, norm: false, stride: stride)
            for l in layers {
                Self.check(normed[l]!.patch, try io.tensor("\(input).layer\(l).norm.patch"), "\(name) \(input) layer \(l) norm patch")
                Self.check(normed[l]!.prefix, try io.tensor("\(input).layer\(l).norm.prefix"), "\(name) \(input) layer \(l) norm prefix")
                Self.check(raw[l]!.patch, try io.tensor("\(input).layer\(l).raw.patch"), "\(name) \(input) layer \(l) raw patch")
            }
        }
    }

    @Test("a checkpoint with missing, unexpected and mis-shaped tensors fails with one error listing them all")
    func loadErrors() throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/vit_b16_tiny")
        var dict = try SafeTensorsFile(url: dir.appendingPathComponent("weights.safetensors")).loadAll()
        dict["blocks.0.norm1.weight"] = nil
        dict["blocks.9.extra"] = Tensor(zeros: [2])
        dict["pos_embed"] = Tensor(zeros: [1, 5, 48])
        dict["head.weight"] = Tensor(zeros: [10, 48])  // classifier heads are ignored
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bad-vit-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try SafeTensors.write(dict, to: tmp)
        var cfg = ViTPresets.named("vit_base_patch16_224.dino")!
        (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (48, 3, 3, 64)
        do {
            _ = try VisionTransformer(config: cfg, weights: tmp)
            Issue.record("loading a broken checkpoint should throw")
        } catch let e as StateDictError {
            #expect(e.missing == ["blocks.0.norm1.weight"])
            #expect(e.unexpected == ["blocks.9.extra"])
            #expect(e.mismatched.map(\.key) == ["pos_embed"])
            #expect(e.description.contains(tmp.path))
        }
    }

    @Test("presets cover DVT's plain-ViT model list")
    func presets() {
        for name in ["vit_small_patch14_dinov2.lvd142m", "vit_base_patch14_reg4_dinov2.lvd142m", "deit3_base_patch16_224.fb_in1k",
                     "vit_base_patch16_clip_224.openai", "vit_base_patch16_224.mae", "vit_small_patch16_224.dino",
                     "vit_small_patch8_224.dino", "vit_base_patch8_224.dino", "vit_base_patch16_224.dino",
                     "vit_base_patch14_dinov2.lvd142m", "vit_large_patch14_dinov2.lvd142m", "vit_small_patch14_reg4_dinov2.lvd142m",
                     "vit_large_patch14_reg4_dinov2.lvd142m", "vit_large_patch16_224.mae", "vit_huge_patch14_224.mae",
                     "vit_base_patch16_clip_384.laion2b_ft_in12k_in1k", "vit_base_patch16_384.augreg_in21k_ft_in1k"] {
            #expect(ViTPresets.named(name) != nil, "missing preset \(name)")
        }
        let s = ViTPresets.named("vit_small_patch14_dinov2")!
        #expect(s.embedDim == 384 && s.depth == 12 && s.heads == 6 && s.patchSize == 14 && s.imageSize == 518)
        #expect(ViTPresets.named("vit_base_patch14_reg4_dinov2")!.prefixTokens == 5)
    }

    @Test("random init is seeded and says so")
    func randomInit() {
        var cfg = ViTPresets.named("vit_small_patch14_dinov2")!
        (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (32, 2, 2, 56)
        let a = VisionTransformer(config: cfg, seed: 5), b = VisionTransformer(config: cfg, seed: 5)
        #expect(a.randomInitSeed == 5)
        #expect(a.posEmbed.scalars == b.posEmbed.scalars)
        var rng = RandomGenerator(seed: 1)
        let x = Tensor.normal([2, 3, 70, 56], rng: &rng)
        let f = a.features(x, layers: [1])[1]!
        #expect(f.patch.shape == [2, 5, 4, 32])
        #expect(f.prefix.shape == [2, 1, 32])
        #expect(f.patch.scalars == b.features(x, layers: [1])[1]!.patch.scalars)
    }
}
