import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// `--weights X.pth`: timm state dicts as they are, DINOv2 hub checkpoints through timm's name
/// mapping, bf16 storages; the features must match the safetensors fixtures' timm outputs.
@Suite("ViT weights from .pth")
struct TorchWeightsTests {
    static let pth = fixturesDirectory.appendingPathComponent("pth")

    static func features(_ family: String, weights: URL, tolerance: Float?) throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/\(family)")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
        let model = try VisionTransformer(config: try ViTConformanceTests.config(meta), weights: weights)
        let io = try SafeTensorsFile(url: dir.appendingPathComponent("io.safetensors"))
        let layers = meta["layers"] as! [Int], stride = meta["stride"] as! Int
        for case_ in meta["cases"] as! [[String: Any]] {
            let input = case_["input"] as! String
            let out = model.features(try io.tensor(input), layers: layers, norm: true, stride: stride)
            for l in layers {
                let what = "\(weights.lastPathComponent) \(input) layer \(l)"
                for part in ["patch", "prefix"] {
                    let actual = part == "patch" ? out[l]!.patch : out[l]!.prefix
                    let expected = try io.tensor("\(input).layer\(l).norm.\(part)")
                    if let tolerance {
                        #expect(actual.shape == expected.shape)
                        let e = expected.scalars, a = actual.scalars
                        let tol = tolerance * max(1, e.map { abs($0) }.max() ?? 0)
                        let worst = zip(a, e).map { abs($0 - $1) }.max() ?? 0
                        #expect(worst <= tol, "\(what) \(part): max abs error \(worst) > \(tol)")
                    } else {
                        ViTConformanceTests.check(actual, expected, "\(what) \(part)")
                    }
                }
            }
        }
    }

    @Test("DINOv2 hub checkpoint (hub names + mask_token) gives the timm features")
    func dinov2Hub() throws {
        try Self.features("dinov2_small_tiny", weights: Self.pth.appendingPathComponent("dinov2_small_tiny_hub.pth"), tolerance: nil)
    }

    @Test("DINOv2 giant SwiGLU hub checkpoint (w12/w3 names) gives the timm features")
    func swigluHubFeatures() throws {
        try Self.features("dinov2_giant_swiglu_tiny", weights: Self.pth.appendingPathComponent("dinov2_giant_swiglu_tiny_hub.pth"), tolerance: nil)
    }

    @Test("bf16 timm state dict gives the timm features within bf16 rounding (2e-2 relative, meta.json)")
    func bf16() throws {
        try Self.features("deit3_b16_tiny", weights: Self.pth.appendingPathComponent("deit3_b16_tiny_bf16.pth"), tolerance: 2e-2)
    }

    @Test("SwiGLU hub names map to timm's: w12 → fc1, w3 → fc2, mask_token dropped, values untouched")
    func swigluHubNames() throws {
        let hub = try WeightFiles.load(Self.pth.appendingPathComponent("dinov2_giant_swiglu_tiny_hub.pth")).tensors
        #expect(hub["mask_token"] != nil && hub["blocks.0.mlp.w12.weight"] != nil)
        let mapped = try TimmCheckpointNames.fromDINOv2Hub(hub)
        let timm = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vit/dinov2_giant_swiglu_tiny/weights.safetensors")).loadAll()
        #expect(Set(mapped.keys) == Set(timm.keys))
        for (k, v) in timm { #expect(mapped[k]?.shape == v.shape && mapped[k]?.scalars == v.scalars, "\(k)") }
    }

    @Test("register hub checkpoints: register_tokens → reg_token, cls row of pos_embed folded into cls_token")
    func registerMapping() throws {
        let c = 4
        let cls = Tensor([1, 2, 3, 4], shape: [1, 1, c])
        let pos = Tensor((0..<12).map(Float.init), shape: [1, 3, c])
        let reg = Tensor((0..<16).map { Float($0) * 0.5 }, shape: [1, 4, c])
        let out = try TimmCheckpointNames.fromDINOv2Hub([
            "mask_token": Tensor(zeros: [1, c]), "cls_token": cls, "pos_embed": pos,
            "register_tokens": reg, "blocks.3.mlp.w3.bias": Tensor(zeros: [c]),
            "blocks.3.attn.qkv.weight": Tensor(zeros: [3 * c, c]),
        ])
        #expect(Set(out.keys) == ["cls_token", "pos_embed", "reg_token", "blocks.3.mlp.fc2.bias", "blocks.3.attn.qkv.weight"])
        #expect(out["cls_token"]!.shape == [1, 1, c] && out["cls_token"]!.scalars == [1, 3, 5, 7])
        #expect(out["pos_embed"]!.shape == [1, 2, c] && out["pos_embed"]!.scalars == (4..<12).map(Float.init))
        #expect(out["reg_token"]!.scalars == reg.scalars)
        // Without mask_token (a timm checkpoint) nothing is renamed.
        let timm = ["blocks.0.mlp.w12.weight": Tensor(zeros: [2])]
        #expect(try TimmCheckpointNames.fromDINOv2Hub(timm).keys.sorted() == ["blocks.0.mlp.w12.weight"])
        #expect(TimmCheckpointNames.swigluRename("blocks.12.mlp.w12.bias") == "blocks.12.mlp.fc1.bias")
        #expect(TimmCheckpointNames.swigluRename("blocks.x.mlp.w12.bias") == nil)
        #expect(TimmCheckpointNames.swigluRename("head.mlp.w3.weight") == nil)
    }

    @Test("weight files are told apart by magic bytes, with a useful error for anything else")
    func dispatch() throws {
        #expect(try WeightFiles.format(of: Self.pth.appendingPathComponent("deit3_b16_tiny_bf16.pth")) == .torch)
        #expect(try WeightFiles.format(of: fixturesDirectory.appendingPathComponent("vit/vit_b16_tiny/weights.safetensors")) == .safetensors)
        let tmp = temporaryDirectory("weights").appendingPathComponent("weights.safetensors")
        defer { try? FileManager.default.removeItem(at: tmp.deletingLastPathComponent()) }
        try Data("GGUF\u{3}\0\0\0junkjunk".utf8).write(to: tmp)
        do {
            _ = try WeightFiles.load(tmp)
            Issue.record("an unknown format must be refused")
        } catch {
            #expect("\(error)".contains("unknown weight-file format") && "\(error)".contains("47 47 55 46"), "\(error)")
        }
        // A .pth whose pickle holds a list, not a state dict.
        try TorchWriter.serialize(.dict([("step", .int(1))])).write(to: tmp)
        do {
            var cfg = ViTPresets.named("vit_base_patch16_224.dino")!
            (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (48, 1, 3, 64)
            _ = try VisionTransformer(config: cfg, weights: tmp)
            Issue.record("a file without tensors must fail")
        } catch {
            #expect("\(error)".contains("missing"), "\(error)")
        }
    }
}
