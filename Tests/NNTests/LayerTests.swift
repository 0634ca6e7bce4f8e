import Foundation
import NN
import TensorCore
import TestSupport
import Testing

/// Minimal F32-only safetensors reader for the block fixture (8-byte little-endian header
/// length, JSON header, raw data). The toolkit's real reader lives in Vision, above NN.
func readF32Safetensors(_ url: URL) throws -> [String: Tensor] {
    let data = try Data(contentsOf: url)
    let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    let headerEnd = 8 + Int(headerLength)
    let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as! [String: Any]
    var out: [String: Tensor] = [:]
    for (key, value) in header where key != "__metadata__" {
        let entry = value as! [String: Any]
        precondition(entry["dtype"] as? String == "F32", "\(url.lastPathComponent): \(key) is not F32")
        let shape = (entry["shape"] as! [Int])
        let offsets = entry["data_offsets"] as! [Int]
        let bytes = data.subdata(in: (headerEnd + offsets[0])..<(headerEnd + offsets[1]))
        let values = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        out[key] = Tensor(values, shape: shape)
    }
    return out
}

@Suite("Layers")
struct LayerTests {
    @Test("Block parameter names are timm's")
    func blockNames() {
        var rng = RandomGenerator(seed: 1)
        let plain = Block(8, heads: 2, rng: &rng)
        #expect(
            plain.namedParameters().map(\.0) == [
                "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
            ])
        let scaled = Block(8, heads: 2, layerScale: 1e-5, rng: &rng)
        let names = scaled.namedParameters().map(\.0)
        #expect(names.contains("ls1.gamma") && names.contains("ls2.gamma"))
        #expect(scaled.stateDict()["mlp.fc1.weight"]!.shape == [32, 8], "mlp ratio 4: fc1 (4C, C)")
        #expect(scaled.stateDict()["attn.qkv.weight"]!.shape == [24, 8], "qkv (3C, C)")
        #expect(scaled.stateDict()["ls1.gamma"]!.scalars == [Float](repeating: 1e-5, count: 8))
    }

    @Test("reluMLP is named like nn.Sequential (ReLUs take indices)")
    func sequentialNames() {
        var rng = RandomGenerator(seed: 2)
        let mlp = Sequential.reluMLP([16, 4, 4, 16], rng: &rng)
        #expect(mlp.namedParameters().map(\.0) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
        #expect(mlp.stateDict()["2.weight"]!.shape == [4, 4])
        // Forward is Linear, ReLU, Linear, ReLU, Linear.
        let x = randn([3, 16], seed: 5, requiresGrad: false)
        let layers = mlp.layers.compactMap { $0 as? Linear }
        let manual = layers[2](layers[1](layers[0](x).relu()).relu())
        expectClose(mlp(x), manual, rtol: 0, atol: 0, "Sequential forward")
    }

    @Test("Linear init is U(−1/√in, 1/√in), reproducible from the seed")
    func linearInit() {
        var a = RandomGenerator(seed: 42), b = RandomGenerator(seed: 42)
        let l1 = Linear(64, 32, rng: &a), l2 = Linear(64, 32, rng: &b)
        #expect(l1.weight.scalars == l2.weight.scalars && l1.bias!.scalars == l2.bias!.scalars)
        let bound: Float = 1 / 8
        #expect(l1.weight.scalars.allSatisfy { abs($0) <= bound } && l1.bias!.scalars.allSatisfy { abs($0) <= bound })
        #expect(l1.weight.scalars.map { abs($0) }.max()! > 0.9 * bound, "should fill the range")
        let noBias = Linear(4, 3, bias: false, rng: &a)
        #expect(noBias.namedParameters().map(\.0) == ["weight"])
        let x = randn([2, 5, 4], seed: 1, requiresGrad: false)
        #expect(noBias(x).shape == [2, 5, 3])
    }

    @Test("Mlp with QuickGELU and LayerScale forward")
    func mlpQuickGelu() {
        var rng = RandomGenerator(seed: 3)
        let mlp = Mlp(6, hidden: 10, activation: .quickGelu, rng: &rng)
        let x = randn([2, 3, 6], seed: 4, requiresGrad: false)
        let h = Tensor.linear(x, mlp.fc1.weight, mlp.fc1.bias)
        let manual = Tensor.linear(h * (h * 1.702).sigmoid(), mlp.fc2.weight, mlp.fc2.bias)
        expectClose(mlp(x), manual, rtol: 1e-5, atol: 1e-6, "quickGelu Mlp")
        let ls = LayerScale(6, initValues: 0.5)
        expectClose(ls(x), x * 0.5, rtol: 0, atol: 0, "LayerScale")
    }

    @Test("load(stateDict:) reports every missing, unexpected and mis-shaped key at once, and writes nothing")
    func loadErrors() throws {
        var rng = RandomGenerator(seed: 7)
        let block = Block(8, heads: 2, rng: &rng)
        let before = block.namedParameters().map { $0.1.scalars }
        var dict: [String: Tensor] = [:]
        for (name, p) in block.namedParameters() { dict[name] = Tensor(repeating: 0.25, shape: p.shape) }
        dict["norm1.bias"] = nil
        dict["mlp.fc2.weight"] = nil
        dict["attn.qkv.weight"] = Tensor(zeros: [8, 8])
        dict["blocks.0.norm1.weight"] = Tensor(zeros: [8])
        dict["pos_embed"] = Tensor(zeros: [1, 4, 8])
        do {
            try block.load(stateDict: dict, source: "model.safetensors")
            Issue.record("load should have thrown")
        } catch let error as StateDictError {
            #expect(error.missing == ["norm1.bias", "mlp.fc2.weight"])
            #expect(error.unexpected == ["blocks.0.norm1.weight", "pos_embed"])
            #expect(error.mismatched == [.init(key: "attn.qkv.weight", expected: [24, 8], found: [8, 8])])
            let message = error.description
            for key in ["norm1.bias", "mlp.fc2.weight", "blocks.0.norm1.weight", "pos_embed", "attn.qkv.weight", "model.safetensors"] {
                #expect(message.contains(key), "message should name \(key): \(message)")
            }
        }
        #expect(block.namedParameters().map { $0.1.scalars } == before, "a failed load must not write")

        // Non-strict: missing/unexpected are reported, a shape mismatch still throws.
        #expect(throws: StateDictError.self) { try block.load(stateDict: dict, strict: false) }
        dict["attn.qkv.weight"] = Tensor(repeating: 0.25, shape: [24, 8])
        let report = try block.load(stateDict: dict, strict: false)
        #expect(report.missing == ["norm1.bias", "mlp.fc2.weight"])
        #expect(report.unexpected == ["blocks.0.norm1.weight", "pos_embed"])
        #expect(block.attn.qkv.weight.scalars.allSatisfy { $0 == 0.25 })
        #expect(block.norm1.bias.scalars == before[1], "missing keys keep their values")
    }

    @Test("a state dict with thousands of stray keys, or a huge key name, gives a short error")
    func loadErrorIsSummarised() throws {
        var rng = RandomGenerator(seed: 7)
        let block = Block(8, heads: 2, rng: &rng)
        var dict: [String: Tensor] = [:]
        for (name, p) in block.namedParameters() { dict[name] = Tensor(repeating: 0.25, shape: p.shape) }
        for i in 0..<5000 { dict["stray.\(i)"] = Tensor(zeros: [1]) }
        dict[String(repeating: "x", count: 1_000_000)] = Tensor(zeros: [1])
        do {
            try block.load(stateDict: dict, source: "crafted.safetensors")
            Issue.record("load should have thrown")
        } catch let error as StateDictError {
            #expect(error.unexpected.count == 5001)
            #expect(error.description.count < 3000, "message is \(error.description.count) characters")
            #expect(error.description.contains("unexpected keys (5001)") && error.description.contains("more"))
        }
    }

    @Test("load(stateDict:) copies values into the existing parameter tensors")
    func loadInPlace() throws {
        var a = RandomGenerator(seed: 1), b = RandomGenerator(seed: 2)
        let src = Sequential.reluMLP([3, 5, 2], rng: &a)
        let dst = Sequential.reluMLP([3, 5, 2], rng: &b)
        let identity = dst.namedParameters().map { ObjectIdentifier($0.1) }
        try dst.load(stateDict: src.stateDict())
        #expect(dst.namedParameters().map { ObjectIdentifier($0.1) } == identity)
        #expect(dst.namedParameters().map { $0.1.scalars } == src.namedParameters().map { $0.1.scalars })
        src.namedParameters()[0].1[flat: 0] += 1
        #expect(dst.namedParameters()[0].1[flat: 0] != src.namedParameters()[0].1[flat: 0], "copied, not shared")
    }

    @Test("Block gradients agree with finite differences (B=2, N=4, C=8, 2 heads, layer scale)")
    func blockGradCheck() {
        var rng = RandomGenerator(seed: 11)
        let block = Block(8, heads: 2, layerScale: 0.7, rng: &rng)
        // Non-trivial norm affine parameters so their gradients are exercised away from 1/0.
        for p in [block.norm1.weight, block.norm2.weight, block.norm1.bias, block.norm2.bias] {
            for i in 0..<p.count { p[flat: i] += rng.uniform(-0.3, 0.3) }
        }
        let x = randn([2, 4, 8], seed: 12)
        let params = block.namedParameters().map(\.1)
        gradCheck("Block", [x] + params) { xs in block(xs[0]) }
    }

    @Test("Block forward and gradients match timm (fixture Tests/Fixtures/block)")
    func blockMatchesTimm() throws {
        let f = try readF32Safetensors(fixturesDirectory.appendingPathComponent("block/block.safetensors"))
        var rng = RandomGenerator(seed: 0)
        let block = Block(64, heads: 2, mlpRatio: 4, activation: .gelu, normEps: 1e-6, rng: &rng)
        var weights: [String: Tensor] = [:]
        for (k, v) in f where k.hasPrefix("param.") { weights[String(k.dropFirst("param.".count))] = v }
        try block.load(stateDict: weights, source: "block.safetensors")
        let x = f["x"]!.copy()
        x.requiresGrad = true
        let y = block(x)
        expectClose(y, f["y"]!, rtol: 0, atol: 1e-4, "Block forward vs timm")
        (y * f["r"]!).sum().backward()
        func checkGrad(_ got: Tensor?, _ want: Tensor, _ what: String) {
            guard let got else { Issue.record("\(what): no gradient"); return }
            let scale = want.scalars.map { abs($0) }.max()!
            expectClose(got.scalars, want.scalars, rtol: 0, atol: 1e-3 * scale, what)
        }
        checkGrad(x.grad, f["grad.x"]!, "dx")
        for (name, p) in block.namedParameters() {
            checkGrad(p.grad, f["grad.\(name)"]!, "d\(name)")
        }
    }
}
