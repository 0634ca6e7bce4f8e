import Formats
import Foundation
import NN
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// Backward through the whole ViT against PyTorch: Tests/Fixtures/vit_grad/<family>.safetensors
/// (scripts/make_vit_grad_fixture.py) holds timm's float64 gradient of every parameter under
/// loss = sum(features · r), features = the last block's patch tokens after the final norm.
@Suite("ViT backward matches timm")
struct ViTGradientTests {
    static let families = ["dinov2_small_tiny", "dinov3_s16_tiny", "eva02_b16_clip_tiny", "dinov2_giant_swiglu_tiny"]

    static func model(_ name: String) throws -> VisionTransformer {
        let dir = fixturesDirectory.appendingPathComponent("vit/\(name)")
        let cfg = try ViTConformanceTests.config(try ViTConformanceTests.meta(name))
        return try VisionTransformer(config: cfg, weights: dir.appendingPathComponent("weights.safetensors"))
    }

    /// The gradients of every parameter after one backward of sum(features · r).
    static func gradients(_ model: VisionTransformer, _ name: String, checkpoint: Bool) throws -> (Float, [String: Tensor]) {
        let io = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vit/\(name)/io.safetensors"))
        let ref = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vit_grad/\(name).safetensors"))
        model.thaw(.all)
        defer { model.freeze() }
        for (_, p) in model.namedParameters() { p.zeroGrad() }
        let f = model.trainingFeatures(try io.tensor("input1"), layer: model.config.depth - 1, checkpointBlocks: checkpoint)
        let loss = (f.patch * (try ref.tensor("r"))).sum()
        loss.backward()
        var out: [String: Tensor] = [:]
        for (k, p) in model.namedParameters() { if let g = p.grad { out[k] = g } }
        return (loss.item, out)
    }

    @Test("every parameter's gradient within 1e-3 relative of timm's", arguments: families)
    func family(_ name: String) throws {
        let model = try Self.model(name)
        let ref = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vit_grad/\(name).safetensors"))
        let (loss, grads) = try Self.gradients(model, name, checkpoint: false)
        let expectedLoss = try ref.tensor("loss").item
        #expect(abs(loss - expectedLoss) <= 1e-4 * max(1, abs(expectedLoss)), "\(name): loss \(loss) vs \(expectedLoss)")
        let refKeys = Set(ref.keys.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) })
        let ours = Set(model.namedParameters().map(\.0))
        #expect(
            refKeys == ours, "\(name): parameters differ from timm's: ours-only \(ours.subtracting(refKeys)), timm-only \(refKeys.subtracting(ours))")
        for key in refKeys.sorted() {
            let expected = try ref.tensor("grad.\(key)")
            guard let actual = grads[key] else { Issue.record("\(name): \(key) got no gradient"); continue }
            #expect(actual.shape == expected.shape, "\(name) \(key): shape \(actual.shape) vs \(expected.shape)")
            guard actual.shape == expected.shape else { continue }
            let e = expected.scalars, a = actual.scalars
            let scale = e.map { abs($0) }.max() ?? 0
            var worst: Float = 0
            for i in 0..<e.count { worst = max(worst, abs(a[i] - e[i])) }
            #expect(worst <= 1e-3 * max(scale, 1e-6), "\(name) \(key): max abs error \(worst) vs max |grad| \(scale)")
        }
    }

    @Test("per-block gradient checkpointing gives the same gradients")
    func checkpointing() throws {
        let name = "dinov3_s16_tiny"
        let model = try Self.model(name)
        let (l0, plain) = try Self.gradients(model, name, checkpoint: false)
        let (l1, ckpt) = try Self.gradients(model, name, checkpoint: true)
        #expect(l0 == l1)
        for (k, g) in plain {
            expectClose(ckpt[k]!, g, rtol: 1e-5, atol: 1e-6, "\(k)")
        }
    }

    @Test("the differentiable pos-embed resample equals the cached inference one")
    func positions() throws {
        let model = try Self.model("dinov2_small_tiny")
        let cached = model.patchPositions(7, 6)!
        model.thaw(.all)
        defer { model.freeze() }
        let graph = model.patchPositions(7, 6)!
        #expect(graph.requiresGrad)
        expectClose(graph, cached, rtol: 1e-5, atol: 1e-6)
    }

    @Test("thaw modes pick SRT's parameter sets")
    func thawModes() throws {
        let model = try Self.model("dinov2_small_tiny")  // depth 4
        let all = model.namedParameters().map(\.0)
        #expect(model.thaw(.all) == all)
        #expect(model.thaw(.bias) == all.filter { $0.contains("bias") })
        let last = model.thaw(.last)
        #expect(last.allSatisfy { $0.hasPrefix("blocks.3.") || $0.hasPrefix("norm.") } && last.contains("norm.weight"))
        let last2 = model.thaw(.last2)
        #expect(last2.contains { $0.hasPrefix("blocks.2.") } && !last2.contains { $0.hasPrefix("blocks.1.") })
        model.freeze()
        #expect(model.namedParameters().allSatisfy { !$0.1.requiresGrad })
    }

    @Test("the timm export has the fixture's key set and shapes, and reads back", arguments: ViTConformanceTests.families)
    func export(_ name: String) throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/\(name)")
        let model = try Self.model(name)
        let fixture = try SafeTensorsFile(url: dir.appendingPathComponent("weights.safetensors"))
        let tmp = temporaryDirectory("vit-export").appendingPathComponent("w.safetensors")
        try model.exportTimm(to: tmp)
        let written = try SafeTensorsFile(url: tmp)
        #expect(Set(written.keys) == Set(fixture.keys), "\(name): exported keys differ from timm's state_dict")
        for k in fixture.keys where written.contains(k) {
            #expect(try written.shape(of: k) == fixture.shape(of: k), "\(name) \(k)")
        }
        let back = try VisionTransformer(config: model.config, weights: tmp)
        for ((k, a), (_, b)) in zip(model.namedParameters(), back.namedParameters()) {
            #expect(a.scalars == b.scalars, "\(name) \(k) changed through export")
        }
    }
}

@Suite("DVT stage-3 checkpoints")
struct DVTWrapperCheckpointTests {
    @Test("keys under DVT's wrapper prefix `model.` load as the timm model; other keys are untouched")
    func wrapperPrefix() throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/dinov2_small_tiny")
        let plain = try SafeTensorsFile(url: dir.appendingPathComponent("weights.safetensors")).loadAll()
        let wrapped = Dictionary(uniqueKeysWithValues: plain.map { ("model." + $0.key, $0.value) })
        let tmp = temporaryDirectory("dvt-wrapper").appendingPathComponent("latest.safetensors")
        try SafeTensors.write(wrapped, to: tmp)
        let model = try ViTGradientTests.model("dinov2_small_tiny")
        let loaded = try VisionTransformer(config: model.config, weights: tmp)
        for ((k, a), (_, b)) in zip(model.namedParameters(), loaded.namedParameters()) { #expect(a.scalars == b.scalars, "\(k)") }
        // A dict that is not all under `model.` is left alone.
        let mixed = wrapped.merging(["other": Tensor(zeros: [1])]) { a, _ in a }
        #expect(TimmCheckpointNames.fromDVTWrapper(mixed).keys.contains("model.pos_embed"))
    }
}
