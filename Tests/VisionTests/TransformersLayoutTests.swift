import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// transformers conformance: every layout in Tests/Fixtures/hf (scripts/make_hf_fixtures.py),
/// loaded as a snapshot folder, at a square and a non-square input, against transformers'
/// `last_hidden_state` and every block's hidden state, to 1e-5.
@Suite("transformers layouts match transformers")
struct TransformersLayoutTests {
    static let fixtures = [
        "dinov2_tiny", "dinov2_swiglu_tiny", "dinov2_reg_tiny", "dinov3_tiny", "vit_tiny", "deit_tiny",
        "clip_tiny", "siglip_tiny",
    ]
    static let tolerance: Float = 1e-5

    static func meta(_ name: String) throws -> [String: Any] {
        let url = fixturesDirectory.appendingPathComponent("hf/\(name)/meta.json")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// [prefix; patches] as transformers orders tokens: (1, R + T, C).
    static func tokens(_ f: ViTFeatures) -> Tensor {
        let b = f.patch.shape[0], c = f.patch.shape[3], t = f.patch.shape[1] * f.patch.shape[2]
        return Tensor.concat([f.prefix, f.patch.reshape([b, t, c])], axis: 1)
    }

    static func maxError(_ a: Tensor, _ e: Tensor, _ what: String) -> Float {
        #expect(a.shape == e.shape, "\(what): shape \(a.shape) vs \(e.shape)")
        guard a.shape == e.shape else { return .infinity }
        return zip(a.scalars, e.scalars).map { abs($0 - $1) }.max() ?? 0
    }

    /// Worst error over the fixture's cases and layers (the last layer normed as transformers'
    /// last_hidden_state, every block raw).
    static func worstError(_ model: VisionTransformer, _ name: String) throws -> Float {
        let meta = try Self.meta(name)
        let io = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("hf/\(name)/io.safetensors"))
        let depth = meta["depth"] as! Int
        let normed = meta["last_hidden_state_has_final_norm"] as! Bool
        var worst: Float = 0
        for c in meta["cases"] as! [[String: Any]] {
            let key = c["input"] as! String
            let x = try io.tensor(key)
            let raw = model.features(x, layers: Array(0..<depth), norm: false)
            let last = model.features(x, layers: [depth - 1], norm: true)[depth - 1]!
            var e = maxError(tokens(normed ? last : raw[depth - 1]!), try io.tensor("\(key).last_hidden_state"), "\(name) \(key) last_hidden_state")
            if !normed { e = max(e, maxError(tokens(last), try io.tensor("\(key).final_norm"), "\(name) \(key) final norm")) }
            for l in 0..<depth {
                e = max(e, maxError(tokens(raw[l]!), try io.tensor("\(key).hidden.\(l)"), "\(name) \(key) block \(l)"))
            }
            print("transformers \(name) \(c["height"]!)x\(c["width"]!): max abs error \(e)")
            worst = max(worst, e)
        }
        return worst
    }

    @Test("features equal transformers' at a square and a non-square size", arguments: fixtures)
    func layout(_ name: String) throws {
        let dir = fixturesDirectory.appendingPathComponent("hf/\(name)")
        let model = try VisionTransformer.load(arch: "unused: the snapshot's config.json decides", weights: dir.path, randomInit: nil)
        let meta = try Self.meta(name)
        #expect(model.weightsOrigin == "transformers \(model.transformers!.layout.rawValue)")
        #expect(model.transformers?.layout == TransformersLayout(modelType: meta["model_type"] as! String))
        let worst = try Self.worstError(model, name)
        #expect(worst <= Self.tolerance, "\(name): max abs error \(worst) > \(Self.tolerance)")
    }

    @Test("each layout's position resampling is its transformers class's", arguments: fixtures)
    func resamplingRule(_ name: String) throws {
        let model = try VisionTransformer.load(arch: "", weights: fixturesDirectory.appendingPathComponent("hf/\(name)").path, randomInit: nil)
        let expected: PositionResampling? =
            switch name {
            case "dinov3_tiny": nil  // RoPE only
            case "dinov2_reg_tiny": .bicubicAntialias
            default: .bicubic
            }
        if let expected {
            #expect(model.config.positionResampling == expected)
            #expect(model.positionResamplingNote == "\(expected.rawValue) (auto: transformers \(model.transformers!.layout.rawValue))")
        } else {
            #expect(model.positionResamplingNote == nil)
        }
    }

    @Test("the other resampling misses transformers by more than the tolerance (the rule matters)")
    func wrongRuleFails() throws {
        let dir = fixturesDirectory.appendingPathComponent("hf/dinov2_tiny")
        let model = try VisionTransformer.load(arch: "", weights: dir.path, randomInit: nil, resample: .bicubicAntialias)
        #expect(model.positionResamplingNote == "bicubic_antialias (config: transformers dinov2)")
        let worst = try Self.worstError(model, "dinov2_tiny")
        #expect(worst > 10 * Self.tolerance, "antialiased resampling should not reproduce Dinov2Model (max error \(worst))")
    }

    @Test("fine-tuning's differentiable resample applies the same rule as inference", arguments: PositionResampling.allCases)
    func trainingPathSameRule(_ rule: PositionResampling) throws {
        let model = try VisionTransformer.load(
            arch: "", weights: fixturesDirectory.appendingPathComponent("hf/dinov2_tiny").path,
            randomInit: nil, resample: rule)
        for (gh, gw) in [(5, 6), (3, 4), (4, 4)] {
            expectClose(
                model.differentiablePatchPositions(gh, gw), model.patchPositions(gh, gw)!, rtol: 0, atol: 2e-6,
                "\(rule.rawValue) \(gh)x\(gw)")
        }
    }

    @Test(
        "a .pth state dict under transformers-5 module names, with config.json beside it, loads the same weights",
        arguments: ["dinov2_tiny", "vit_tiny"])
    func moduleNamesPth(_ name: String) throws {
        let dir = fixturesDirectory.appendingPathComponent("hf/\(name)")
        let a = try VisionTransformer.load(arch: "", weights: dir.path, randomInit: nil)
        let b = try VisionTransformer.load(arch: "", weights: dir.appendingPathComponent("v5_state_dict.pth").path, randomInit: nil)
        let sa = a.timmStateDict(), sb = b.timmStateDict()
        #expect(Set(sa.keys) == Set(sb.keys))
        for (k, v) in sa { #expect(sb[k]?.scalars == v.scalars, "\(name): \(k) differs between the two name sets") }
    }

    /// Agreement is to float rounding, not bit-exact: torch's vectorised kernel contracts some
    /// multiply-adds (largest difference seen 3.1e-6 on values up to 2.9).
    @Test("torch's non-antialiased bicubic: Resize.bicubicTorch equals F.interpolate(mode='bicubic')")
    func bicubicTorch() throws {
        let f = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("hf/bicubic_resample.safetensors"))
        let x = try f.tensor("input")  // (1, 3, 5, 6)
        let chw = x.reshape([3, 5, 6])
        let hwc = chw.permute([1, 2, 0])
        var checked = 0
        for key in f.keys where key.hasPrefix("size.") || key.hasPrefix("scale.") {
            let want = try f.tensor(key)  // (1, 3, h, w)
            let (h, w) = (want.shape[2], want.shape[3])
            var scales: (Double, Double)?
            if key.hasPrefix("scale.") {
                // scale.<sy>x<sx>.<h>x<w>
                let parts = key.dropFirst(6).split(separator: "x")
                let sy = Double(parts[0])!, sx = Double(parts[1].split(separator: ".").dropLast().joined(separator: "."))!
                scales = (sy, sx)
            }
            let got = Resize.bicubicTorch(chw, height: h, width: w, layout: .chw, scaleFactors: scales)
            expectClose(got.reshape([1, 3, h, w]), want, rtol: 0, atol: 5e-6, "bicubic \(key) CHW")
            let gotHWC = Resize.bicubicTorch(hwc, height: h, width: w, layout: .hwc, scaleFactors: scales)
            expectClose(gotHWC.permute([2, 0, 1]).reshape([1, 3, h, w]), want, rtol: 0, atol: 5e-6, "bicubic \(key) HWC")
            checked += 1
        }
        #expect(checked == 8)
        // The +0.1-offset rule, from a 4 × 4 grid (HWC, as the ViT resamples pos_embed).
        let p = try f.tensor("offset_input").reshape([3, 4, 4]).permute([1, 2, 0])  // (4, 4, 3)
        for (gh, gw) in [(5, 5), (6, 3), (2, 2)] {
            let got = PositionResampling.bicubicOffset.resize(p, height: gh, width: gw, layout: .hwc)
            expectClose(
                got.permute([2, 0, 1]).reshape([1, 3, gh, gw]), try f.tensor("offset.\(gh)x\(gw)"), rtol: 0, atol: 5e-6,
                "bicubic_offset \(gh)x\(gw)")
            let plain = PositionResampling.bicubic.resize(p, height: gh, width: gw, layout: .hwc)
            #expect(got.scalars != plain.scalars || (gh, gw) == (4, 4), "the offset must change the sampling")
        }
    }

    @Test("config.json errors name the file and the key")
    func configErrors() throws {
        func parse(_ text: String) throws -> TransformersModel {
            try TransformersModel(config: try HeaderJSONParser.parse(Array(text.utf8)), file: "/x/config.json")
        }
        #expect(throws: VisionError.self) { try parse(#"{"hidden_size": 32}"#) }
        do { _ = try parse(#"{"model_type": "bert"}"#); Issue.record("bert accepted") } catch let e as VisionError {
            #expect(e.description.contains("/x/config.json") && e.description.contains("bert"))
        }
        do { _ = try parse(#"{"model_type": "dinov2", "hidden_size": "big"}"#); Issue.record("string size accepted") } catch let e as VisionError {
            #expect(e.description.contains("'hidden_size'") && e.description.contains("string"))
        }
        do { _ = try parse(#"{"model_type": "vit", "hidden_size": 30, "num_attention_heads": 4}"#); Issue.record("30/4 accepted") } catch let e
            as VisionError
        {
            #expect(e.description.contains("not divisible"))
        }
        do { _ = try parse(#"{"model_type": "clip"}"#); Issue.record("clip without vision_config") } catch let e as VisionError {
            #expect(e.description.contains("vision_config"))
        }
        do { _ = try parse(#"{"model_type": "siglip_vision_model", "hidden_act": "mish"}"#); Issue.record("mish accepted") } catch let e
            as VisionError
        {
            #expect(e.description.contains("hidden_act") && e.description.contains("mish"))
        }
        let clip = try parse(#"{"model_type": "clip", "vision_config": {"hidden_size": 64, "num_attention_heads": 4, "patch_size": 16}}"#)
        #expect(clip.layout == .clip && clip.config.embedDim == 64 && clip.config.activation == .quickGelu && clip.config.preNorm)
    }

    @Test("config.json parsing survives random and mutated bytes (fuzz)")
    func configFuzz() throws {
        let seed = try String(contentsOf: fixturesDirectory.appendingPathComponent("hf/dinov2_reg_tiny/config.json"), encoding: .utf8)
        var rng = RandomGenerator(seed: 23)
        var base = Array(seed.utf8)
        for i in 0..<2000 {
            var bytes = base
            let edits = 1 + Int(rng.next() % 4)
            for _ in 0..<edits where !bytes.isEmpty {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: at)
                default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                }
            }
            if let json = try? HeaderJSONParser.parse(bytes) {
                _ = try? TransformersModel(config: json, file: "fuzz-\(i)")
            }
            if i == 1000 { base = Array(#"{"model_type": "dinov2", "image_size": [56, 56], "patch_size": [14, 14]}"#.utf8) }
        }
    }

    @Test("mutated checkpoints (a tensor dropped, added, reshaped) are refused with an error, never a crash", arguments: fixtures)
    func mutatedCheckpoints(_ name: String) throws {
        let dir = fixturesDirectory.appendingPathComponent("hf/\(name)")
        let model = try TransformersModel.read(config: dir.appendingPathComponent("config.json"))
        let original = try SafeTensorsFile(url: dir.appendingPathComponent("model.safetensors")).loadAll()
        let keys = original.keys.sorted()
        var rng = RandomGenerator(seed: 77)
        func load(_ sd: [String: Tensor]) throws {
            let timm = try HFCheckpointNames.toTimm(sd, layout: model.layout, source: "mutated \(name)")
            _ = try VisionTransformer(
                config: model.config, stateDict: timm.filter { !VisionTransformer.isIgnoredKey($0.key) }, source: "mutated \(name)")
        }
        try load(original)  // the unmutated checkpoint loads
        var refused = 0
        for trial in 0..<60 {
            var sd = original
            let key = keys[Int(rng.next() % UInt64(keys.count))]
            switch trial % 3 {
            case 0: sd[key] = nil
            case 1: sd["encoder.extra.\(trial).weight"] = Tensor(zeros: [3])
            default:
                let t = sd[key]!
                sd[key] = Tensor(zeros: t.shape.isEmpty ? [2] : [t.shape[0] + 1] + t.shape.dropFirst())
            }
            // Tensors the mapping drops (mask_token, ViT's pooler) may change freely.
            if key.contains("mask_token") || key.hasPrefix("pooler.") { continue }
            do { try load(sd); Issue.record("\(name): mutation \(trial) of \(key) was accepted") } catch { refused += 1 }
        }
        #expect(refused > 0)
    }

    @Test("a folder without config.json, or without weights, is refused with the reason")
    func snapshotErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-snap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        do { _ = try TransformersSnapshot.locate(dir); Issue.record("empty folder accepted") } catch let e as VisionError {
            #expect(e.description.contains("config.json"))
        }
        try FileManager.default.copyItem(
            at: fixturesDirectory.appendingPathComponent("hf/vit_tiny/config.json"),
            to: dir.appendingPathComponent("config.json"))
        do { _ = try TransformersSnapshot.locate(dir); Issue.record("folder without weights accepted") } catch let e as VisionError {
            #expect(e.description.contains("model.safetensors"))
        }
        // A timm checkpoint beside an unrelated config.json stays a timm checkpoint.
        try FileManager.default.copyItem(
            at: fixturesDirectory.appendingPathComponent("vit/vit_b16_tiny/weights.safetensors"),
            to: dir.appendingPathComponent("timm.safetensors"))
        #expect(try TransformersSnapshot.locate(dir.appendingPathComponent("timm.safetensors")) == nil)
        // A timm Hub folder (config.json with `architecture`, timm-named model.safetensors) is
        // refused with the file and arch to pass instead.
        let timmDir = dir.appendingPathComponent("timm-repo")
        try FileManager.default.createDirectory(at: timmDir, withIntermediateDirectories: true)
        try #"{"architecture": "vit_base_patch16_224", "num_classes": 0}"#.write(
            to: timmDir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: dir.appendingPathComponent("timm.safetensors"), to: timmDir.appendingPathComponent("model.safetensors"))
        do { _ = try TransformersSnapshot.locate(timmDir); Issue.record("timm folder accepted as a snapshot") } catch let e as VisionError {
            #expect(e.description.contains("--arch vit_base_patch16_224") && e.description.contains("model.safetensors"))
        }
    }
}
