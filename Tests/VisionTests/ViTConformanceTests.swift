import Formats
import Foundation
import NN
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// timm conformance: every family in Tests/Fixtures/vit, every case, every listed layer, with
/// and without the final norm, plus the prefix tokens (tolerance from each meta.json:
/// max abs error <= 1e-4 · max(1, max |expected|)).
@Suite("ViT matches timm")
struct ViTConformanceTests {
    static let families = [
        "dinov2_small_tiny", "dinov2_reg4_tiny", "dinov2_stride7_tiny", "vit_b16_tiny",
        "deit3_b16_tiny", "clip_b16_tiny", "dinov2_giant_swiglu_tiny", "dinov2_giant_reg4_tiny",
        "eva02_b16_clip_tiny", "dinov3_s16_tiny", "siglip_b16_tiny",
    ]

    static func meta(_ name: String) throws -> [String: Any] {
        let url = fixturesDirectory.appendingPathComponent("vit/\(name)/meta.json")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// The architecture a fixture was made with: the preset of its timm family (found by the
    /// timm name itself), resized. Only the sizes come from the fixture; everything that makes
    /// the family (MLP, attention, RoPE, prefix tokens, eps) comes from the preset.
    static func config(_ meta: [String: Any]) throws -> ViTConfig {
        let arch = meta["timm_arch"] as! String
        let kw = meta["timm_kwargs"] as! [String: Any]
        var base: ViTConfig
        if let preset = ViTPresets.named(arch) {
            base = preset
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
        if let eps = (meta["ln_eps"] ?? (meta["eva_flags"] as? [String: Any])?["ln_eps"]) as? Double {
            #expect(base.normEps == Float(eps), "\(arch): LayerNorm eps")
        }
        if let abs = meta["abs_pos_embed"] as? Bool { #expect(base.absolutePositionEmbedding == abs, "\(arch): abs pos-embed") }
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
        let meta = try Self.meta(name)
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
                if cfg.prefixTokens > 0 {
                    Self.check(normed[l]!.prefix, try io.tensor("\(input).layer\(l).norm.prefix"), "\(name) \(input) layer \(l) norm prefix")
                } else {
                    #expect(normed[l]!.prefix.shape == [x.shape[0], 0, cfg.embedDim])
                    #expect(!io.keys.contains("\(input).layer\(l).norm.prefix"))
                }
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
        let tmp = temporaryDirectory("bad-vit").appendingPathComponent("weights.safetensors")
        defer { try? FileManager.default.removeItem(at: tmp.deletingLastPathComponent()) }
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
        for name in [
            "vit_small_patch14_dinov2.lvd142m", "vit_base_patch14_reg4_dinov2.lvd142m", "deit3_base_patch16_224.fb_in1k",
            "vit_base_patch16_clip_224.openai", "vit_base_patch16_224.mae", "vit_small_patch16_224.dino",
            "vit_small_patch8_224.dino", "vit_base_patch8_224.dino", "vit_base_patch16_224.dino",
            "vit_base_patch14_dinov2.lvd142m", "vit_large_patch14_dinov2.lvd142m", "vit_small_patch14_reg4_dinov2.lvd142m",
            "vit_large_patch14_reg4_dinov2.lvd142m", "vit_large_patch16_224.mae", "vit_huge_patch14_224.mae",
            "vit_base_patch16_clip_384.laion2b_ft_in12k_in1k", "vit_base_patch16_384.augreg_in21k_ft_in1k",
            "vit_giant_patch14_dinov2.lvd142m", "vit_giant_patch14_reg4_dinov2.lvd142m",
            "eva02_base_patch16_clip_224.merged2b", "vit_base_patch16_clip_quickgelu_224.openai",
            "vit_small_patch16_dinov3.lvd1689m", "vit_base_patch16_dinov3.lvd1689m",
            "vit_large_patch16_dinov3.lvd1689m", "vit_large_patch16_dinov3.sat493m",
            "vit_base_patch16_siglip_224.webli",
        ] {
            #expect(ViTPresets.named(name) != nil, "missing preset \(name)")
        }
        let s = ViTPresets.named("vit_small_patch14_dinov2")!
        #expect(s.embedDim == 384 && s.depth == 12 && s.heads == 6 && s.patchSize == 14 && s.imageSize == 518)
        #expect(ViTPresets.named("vit_base_patch14_reg4_dinov2")!.prefixTokens == 5)
        // timm 1.0.31: the `clip_224` arch keeps exact GELU, its `clip_quickgelu_224` twin sets QuickGELU.
        #expect(ViTPresets.named("vit_base_patch16_clip_224.openai")!.activation == .gelu)
        #expect(ViTPresets.named("vit_base_patch16_clip_quickgelu_224.openai")!.activation == .quickGelu)
        // Real ViT-g/14: fc1 int(1536 · 5.33334) = 8192 = 2 · 4096 (timm's comment in vit_giant_patch14_dinov2).
        #expect(ViTPresets.named("vit_giant_patch14_dinov2")!.mlpHiddenWidth == 4096)
        // Real EVA-02 B: int(768 · 8/3) = 2048.
        #expect(ViTPresets.named("eva02_base_patch16_clip_224")!.mlpHiddenWidth == 2048)
        let d3 = ViTPresets.named("vit_small_patch16_dinov3")!
        #expect(d3.prefixTokens == 5 && !d3.absolutePositionEmbedding && d3.rope == .dinov3(temperature: 100))
        #expect(ViTPresets.named("vit_base_patch16_siglip_224")!.prefixTokens == 0)
    }

    @Test("random init is seeded and says so")
    func randomInit() {
        var cfg = ViTPresets.named("vit_small_patch14_dinov2")!
        (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (32, 2, 2, 56)
        let a = VisionTransformer(config: cfg, seed: 5), b = VisionTransformer(config: cfg, seed: 5)
        #expect(a.randomInitSeed == 5)
        #expect(a.posEmbed!.scalars == b.posEmbed!.scalars)
        var rng = RandomGenerator(seed: 1)
        let x = Tensor.normal([2, 3, 70, 56], rng: &rng)
        let f = a.features(x, layers: [1])[1]!
        #expect(f.patch.shape == [2, 5, 4, 32])
        #expect(f.prefix.shape == [2, 1, 32])
        #expect(f.patch.scalars == b.features(x, layers: [1])[1]!.patch.scalars)
    }

    @Test("RoPE tables equal timm's rope.get_embed for every fixture grid", arguments: ["eva02_b16_clip_tiny", "dinov3_s16_tiny"])
    func ropeTables(_ name: String) throws {
        let meta = try Self.meta(name)
        let cfg = try Self.config(meta)
        let io = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vit/\(name)/io.safetensors"))
        for case_ in meta["cases"] as! [[String: Any]] {
            let input = case_["input"] as! String, grid = case_["grid"] as! [Int]
            let expected = try io.tensor("\(input).rope_sincos")  // (T, 2D) = [sin | cos]
            let (sin, cos) = cfg.rope!.tables(gridHeight: grid[0], gridWidth: grid[1], headDim: cfg.headDim)
            let d = cfg.headDim
            expectClose(Tensor.concat([sin, cos], axis: 1), expected, rtol: 0, atol: 2e-6, "\(name) \(input) rope table")
            #expect(expected.shape == [grid[0] * grid[1], 2 * d])
        }
    }

    @Test("the CLIP fixture is QuickGELU: the exact-GELU preset on its weights misses it by more than the tolerance")
    func clipActivation() throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/clip_b16_tiny")
        let meta = try Self.meta("clip_b16_tiny")
        #expect(meta["timm_arch"] as? String == "vit_base_patch16_clip_quickgelu_224")
        var cfg = try Self.config(meta)
        #expect(cfg.activation == .quickGelu)
        cfg.activation = ViTPresets.named("vit_base_patch16_clip_224.openai")!.activation
        let model = try VisionTransformer(config: cfg, weights: dir.appendingPathComponent("weights.safetensors"))
        let io = try SafeTensorsFile(url: dir.appendingPathComponent("io.safetensors"))
        let l = (meta["layers"] as! [Int]).max()!
        let got = model.features(try io.tensor("input0"), layers: [l])[l]!.patch.scalars
        let want = try io.tensor("input0.layer\(l).norm.patch").scalars
        let worst = zip(got, want).map { abs($0 - $1) }.max()!
        #expect(worst > 1e-4 * max(1, want.map { abs($0) }.max()!), "exact GELU should not reproduce the QuickGELU fixture (max error \(worst))")
    }
}
