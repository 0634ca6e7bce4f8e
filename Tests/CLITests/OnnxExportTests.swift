import DVT
import Formats
import Foundation
import Jobs
import ONNX
import ONNXExport
import TensorCore
import TestSupport
import Testing
import Vision

/// The ONNX exports read back with our own ONNX reader: weights under their source names and
/// values, opset, dynamic axes, a well-formed node list, the resampling Resize, provenance. This
/// checks that we agree with ourselves; scripts/test-onnx-export.sh checks the graphs'
/// outputs in onnxruntime against dvt's.
@Suite("ONNX export: structure")
struct OnnxExportTests {
    static let denoiserFixture = fixturesDirectory.appendingPathComponent("denoiser/weights.safetensors")

    /// Every node input is a graph input, an initializer or an earlier node's output (the node
    /// list is topologically sorted, as ONNX requires), and every output is produced.
    static func checkWellFormed(_ m: ONNXModel) {
        var known = Set(m.graph.input.map(\.name) + m.graph.initializer.map(\.name))
        for node in m.graph.node {
            for input in node.input where !input.isEmpty {
                #expect(known.contains(input), "node \(node.name) (\(node.opType)) reads '\(input)' before it is defined")
            }
            for output in node.output {
                #expect(!known.contains(output), "value '\(output)' defined twice")
                known.insert(output)
            }
        }
        for output in m.graph.output { #expect(known.contains(output.name), "graph output \(output.name) is never produced") }
    }

    static func dims(_ v: Onnx_ValueInfoProto) -> [String] {
        v.type.tensorType.shape.dim.map { $0.dimParam.isEmpty ? String($0.dimValue) : $0.dimParam }
    }

    /// The Resize nodes, in graph order, carry the attributes of torch's antialiased bicubic
    /// (`antialias` true) or of its plain bicubic.
    static func checkResizes(_ m: ONNXModel, antialias expected: [Bool]) {
        let resizes = m.graph.node.filter { $0.opType == "Resize" }
        #expect(resizes.count == expected.count)
        for (r, aa) in zip(resizes, expected) {
            var a: [String: Onnx_AttributeProto] = [:]
            for x in r.attribute { a[x.name] = x }
            #expect(String(decoding: a["mode"]?.s ?? Data(), as: UTF8.self) == "cubic")
            #expect(String(decoding: a["coordinate_transformation_mode"]?.s ?? Data(), as: UTF8.self) == "half_pixel")
            if aa {
                #expect(a["antialias"]?.i == 1 && a["exclude_outside"]?.i == 1 && a["cubic_coeff_a"]?.f == -0.5)
            } else {
                #expect(a["antialias"]?.i == 0 && a["exclude_outside"]?.i == 0 && a["cubic_coeff_a"]?.f == -0.75)
            }
        }
    }

    @Test("SHA-256 of known vectors, one-shot and streamed across block boundaries")
    func sha256() throws {
        #expect(SHA256Digest.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Digest.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256Digest.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var rng = RandomGenerator(seed: 3)
        let bytes = Data((0..<1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        var streamed = SHA256Digest()
        var offset = 0
        for size in [1, 63, 64, 65, 200, 607] {
            streamed.update(bytes.subdata(in: offset..<(offset + size)))
            offset += size
        }
        #expect(streamed.finalize() == SHA256Digest.hex(bytes))
    }

    @Test("dvt export --out x.onnx: official names and values, dynamic B/H/W, opset 18, provenance")
    func denoiserExport() throws {
        let dir = temporaryDirectory("onnx-denoiser")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("denoiser.onnx")
        try runDVT(["export", Self.denoiserFixture.path, "--out", out.path])
        let m = try ONNXModel(contentsOf: out)
        #expect(m.defaultOpset == 18)
        let d = try Denoiser.load(Self.denoiserFixture)
        let weights = try m.initializers { !$0.name.hasPrefix("const_") && !$0.name.contains("/") }
        #expect(Set(weights.keys) == Set(d.namedParameters().map(\.0)))
        for (k, t) in d.namedParameters() {
            #expect(weights[k]?.shape == t.shape, "\(k) shape")
            #expect(weights[k]?.scalars == t.scalars, "\(k) values")
        }
        #expect(m.graph.input.map(\.name) == ["features"] && m.graph.output.map(\.name) == ["denoised"])
        #expect(Self.dims(m.graph.input[0]) == ["batch", "height", "width", "64"])
        #expect(Self.dims(m.graph.output[0]) == ["batch", "height", "width", "64"])
        Self.checkWellFormed(m)
        Self.checkResizes(m, antialias: [true])
        #expect(m.graph.node.filter { $0.opType == "LayerNormalization" }.count == 2)
        let meta = m.metadata
        #expect(meta["source_sha256"] == (try SHA256Digest.hex(file: Self.denoiserFixture)))
        #expect(meta["toolkit"]?.hasPrefix("dvt ") == true)
        #expect(meta["noise_map_height"] == "6" && meta["num_heads"] == "1")
        #expect(meta["position_embedding_resampling"]?.contains("exclude_outside=1") == true)
        #expect(meta["layer"] != nil && meta["input_size"] != nil && meta["architecture"] != nil)

        // The format follows the extension; a contradicting --format is refused, nothing written.
        let wrong = dir.appendingPathComponent("d.onnx")
        #expect { try runDVT(["export", Self.denoiserFixture.path, "--out", wrong.path, "--format", "pth"]) } throws: {
            "\($0)".contains("contradicts")
        }
        #expect(!FileManager.default.fileExists(atPath: wrong.path))
        // --format onnx with an extension-less name writes ONNX.
        let plain = dir.appendingPathComponent("denoiser_model")
        try runDVT(["export", Self.denoiserFixture.path, "--out", plain.path, "--format", "onnx"])
        #expect(try ONNXModel(contentsOf: plain).metadata["format"] == "dvt-denoiser-onnx-1")
    }

    /// A denoiser for `dim`-channel features, written as an official-layout safetensors.
    static func denoiserFile(dim: Int, in dir: URL) throws -> URL {
        let d = try Denoiser(config: DenoiserConfig(dim: dim, grid: (3, 3)), seed: 4)
        let url = dir.appendingPathComponent("d\(dim).safetensors")
        try d.export(to: url, provenance: ["vit_model": "test", "layer": "1"])
        return url
    }

    @Test(
        "dvt export-extractor: ViT weights as vit.model.<timm key> up to --layer, denoiser, prefix tokens, fixed or dynamic size",
        arguments: [("vit_small_patch14_reg4_dinov2.lvd142m", true), ("vit_small_patch16_224.dino", false)])
    func extractorExport(arch: String, fixedSize: Bool) throws {
        let dir = temporaryDirectory("onnx-extractor")
        defer { try? FileManager.default.removeItem(at: dir) }
        let vit = try VisionTransformer.load(arch: arch, weights: nil, randomInit: 5)
        let dFile = try Self.denoiserFile(dim: vit.config.embedDim, in: dir)
        let out = dir.appendingPathComponent("x.onnx")
        let p = vit.config.patchSize
        var args = ["export-extractor", "--arch", arch, "--random-init", "5", "--layer", "1", "--denoiser", dFile.path, "--out", out.path]
        if fixedSize { args += ["--size", "\(4 * p)", "\(5 * p)"] }
        try runDVT(args)
        let m = try ONNXModel(contentsOf: out)
        #expect(m.defaultOpset == 18)
        Self.checkWellFormed(m)
        Self.checkResizes(m, antialias: [true, true])  // the ViT's pos_embed and the denoiser's
        let inits = try m.initializers()
        let expected = vit.namedParameters().filter { key, _ in
            !key.hasPrefix("blocks.") || key.hasPrefix("blocks.0.") || key.hasPrefix("blocks.1.")
        }
        for (k, t) in expected {
            #expect(inits["vit.model." + k]?.scalars == t.scalars, "vit.model.\(k)")
        }
        #expect(!inits.keys.contains { $0.hasPrefix("vit.model.blocks.2.") }, "blocks after --layer are in the file")
        #expect(inits["pos_embed"]?.shape == [1, 9, vit.config.embedDim] && inits["denoiser.attn.qkv.weight"] != nil)
        #expect(m.graph.input.map(\.name) == ["image"])
        #expect(Self.dims(m.graph.input[0]) == ["batch", "3"] + (fixedSize ? ["\(4 * p)", "\(5 * p)"] : ["height", "width"]))
        #expect(m.graph.output.map(\.name) == ["denoised", "raw_features"])
        let c = String(vit.config.embedDim)
        #expect(Self.dims(m.graph.output[0]) == ["batch"] + (fixedSize ? ["4", "5"] : ["grid_height", "grid_width"]) + [c])
        // Blocks 0 and 1 and the denoiser's block, each with two LayerNorms, plus the final norm.
        #expect(m.graph.node.filter { $0.opType == "LayerNormalization" }.count == 7)
        #expect(m.graph.node.filter { $0.opType == "Conv" }.count == 1)
        let meta = m.metadata
        #expect(meta["vit_model"] == vit.config.name && meta["layer"] == "1")
        #expect(meta["input_size"] == (fixedSize ? "\(4 * p)x\(5 * p)" : "dynamic (each side >= \(p))"))
        #expect(meta["denoiser_source_sha256"] == (try SHA256Digest.hex(file: dFile)))
        #expect(meta["vit_source_sha256"]?.contains("random") == true && meta["warning"]?.contains("RANDOM WEIGHTS") == true)
        #expect(meta["denoiser_vit_model"] == "test")
    }

    @Test("a ViT with transformers' position rule (plain torch bicubic) gets the plain Resize; the denoiser keeps the antialiased one")
    func transformersRule() throws {
        let dir = temporaryDirectory("onnx-rule")
        defer { try? FileManager.default.removeItem(at: dir) }
        var cfg = try #require(ViTPresets.named("vit_small_patch14_dinov2"))
        cfg.positionResampling = .bicubic
        let vit = VisionTransformer(config: cfg, seed: 2)
        let dFile = try Self.denoiserFile(dim: 384, in: dir)
        let g = try OnnxExport.extractorGraph(
            vit: vit, layer: 0, stride: nil, inputSize: nil, denoiser: try Denoiser.load(dFile),
            vitSHA256: nil, denoiserSHA256: "x", provenance: .init(toolkit: "test"))
        let out = dir.appendingPathComponent("rule.onnx")
        try OnnxExport.write(g, to: out)
        let m = try ONNXModel(contentsOf: out)
        Self.checkWellFormed(m)
        Self.checkResizes(m, antialias: [false, true])
        #expect(m.metadata["position_embedding_resampling"]?.hasPrefix("ViT: transformers interpolate_pos_encoding") == true)
    }

    @Test("families the graph does not cover, and mismatched widths, are refused with a clear error and no file")
    func refusals() throws {
        let dir = temporaryDirectory("onnx-refuse")
        defer { try? FileManager.default.removeItem(at: dir) }
        let d384 = try Self.denoiserFile(dim: 384, in: dir)
        let out = dir.appendingPathComponent("x.onnx")
        for arch in ["vit_small_patch16_dinov3.lvd1689m", "eva02_base_patch16_clip_224.merged2b"] {
            #expect {
                try runDVT(["export-extractor", "--arch", arch, "--random-init", "1", "--layer", "0", "--denoiser", d384.path, "--out", out.path])
            } throws: {
                "\($0)".contains("cannot be exported to ONNX yet") && "\($0)".contains("RoPE")
            }
        }
        let d64 = try Self.denoiserFile(dim: 64, in: dir)
        #expect {
            try runDVT([
                "export-extractor", "--arch", "vit_small_patch14_dinov2.lvd142m", "--random-init", "1", "--layer", "0", "--denoiser", d64.path,
                "--out", out.path,
            ])
        } throws: {
            "\($0)".contains("64-channel") && "\($0)".contains("384")
        }
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
