import Formats
import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import DVTCommands

/// A Python with torch, timm, transformers and safetensors for the timm-side checks:
/// $DVT_HF_PYTHON, else the venv scripts/hf-venv.sh makes (~/.cache/dvt/venvs/hf).
let timmPython: String? = {
    let env = ProcessInfo.processInfo.environment
    let candidates = [env["DVT_HF_PYTHON"], env["HOME"].map { $0 + "/.cache/dvt/venvs/hf/bin/python" }].compactMap { $0 }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}()
let onCI = ProcessInfo.processInfo.environment["CI"] == "true"

@Suite("dvt convert and transformers snapshots on the command line")
struct ConvertCLITests {
    static let layouts = [
        "dinov2_tiny", "dinov2_swiglu_tiny", "dinov2_reg_tiny", "dinov3_tiny", "vit_tiny", "deit_tiny",
        "clip_tiny", "siglip_tiny",
    ]
    static let timmFixtures = [
        "dinov2_reg4_tiny", "dinov2_giant_swiglu_tiny", "dinov3_s16_tiny", "eva02_b16_clip_tiny",
        "siglip_b16_tiny", "clip_b16_tiny", "deit3_b16_tiny",
    ]

    @Test("dvt extract reads a snapshot folder and records the position resampling; the flag overrides it")
    func extractSnapshot() throws {
        let dir = temporaryDirectory("hf-extract")
        defer { try? FileManager.default.removeItem(at: dir) }
        let snap = fixturesDirectory.appendingPathComponent("hf/dinov2_tiny").path
        let images = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: photos.appendingPathComponent("chelsea.jpg"), to: images.appendingPathComponent("cat.jpg"))
        var maps: [[Float]] = []
        for (i, rule) in ["auto", "bicubic_antialias"].enumerated() {
            let out = dir.appendingPathComponent("out\(i)")
            try runDVT([
                "extract", "--weights", snap, "--size", "70", "84", "--images", images.path, "--out", out.path,
                "--pos-embed-resample", rule,
            ])
            let f = try Npy.read(out.appendingPathComponent("cat.npy"))
            #expect(f.shape == [5, 6, 32])
            maps.append(f.scalars)
            let info = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("extract_info.json"))) as! [String: Any]
            #expect(info["weights_origin"] as? String == "transformers dinov2")
            #expect(
                info["pos_embed_resample"] as? String
                    == (i == 0 ? "bicubic (auto: transformers dinov2)" : "bicubic_antialias (config: transformers dinov2)"))
        }
        #expect(maps[0] != maps[1], "the resampling rule must change the features of a resampled grid")
    }

    @Test("dvt stage1 takes a snapshot folder as `weights` and `pos_embed_resample` from the config, and records both")
    func stage1Snapshot() throws {
        let dir = temporaryDirectory("hf-stage1")
        defer { try? FileManager.default.removeItem(at: dir) }
        var run = TinyRun(dir)
        run.model = "dinov2_tiny"
        run.weights = fixturesDirectory.appendingPathComponent("hf/dinov2_tiny").path
        run.randomInit = nil
        run.posEmbedResample = "bicubic_offset"
        run.inputSize = [70, 84]
        run.train = ["chelsea.jpg"]
        run.trainListName = "list.txt"
        run.val = nil
        run.seed = nil
        run.stage1.printFreq = nil
        run.stage1.visEvery = 0
        run.stage2 = nil
        run.srt = nil
        let cfg = try run.write(name: "hf.yaml")
        try runDVT(["stage1", cfg.path])
        let out = dir.appendingPathComponent("out")
        #expect(try Npy.read(out.appendingPathComponent("raw_features/dinov2_tiny/chelsea.npy")).shape == [5, 6, 32])
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("backbone.json"))) as! [String: String]
        #expect(info["weights_origin"] == "transformers dinov2")
        #expect(info["pos_embed_resample"] == "bicubic_offset (config: transformers dinov2)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("RANDOM_WEIGHTS_WARNING.txt").path))
    }

    @Test("dvt convert writes timm names and the timm architecture; bad outputs are refused")
    func convertOffline() throws {
        let dir = temporaryDirectory("convert")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("d.safetensors")
        try runDVT(["convert", fixturesDirectory.appendingPathComponent("hf/dinov2_reg_tiny").path, "--out", out.path])
        let f = try SafeTensorsFile(url: out)
        #expect(f.metadata["timm_arch"] == "vit_small_patch14_reg4_dinov2")
        #expect(f.keys.contains("reg_token") && f.keys.contains("blocks.1.ls2.gamma") && f.keys.contains("blocks.0.attn.qkv.weight"))
        #expect(!f.keys.contains { $0.hasPrefix("embeddings.") || $0.hasPrefix("encoder.") })
        // The converted file reads back (as timm names) to the same features.
        var cfg = ViTPresets.named("vit_small_patch14_reg4_dinov2")!
        (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (32, 2, 2, 56)
        cfg.normEps = 1e-6
        let back = try VisionTransformer(config: cfg, weights: out)
        let orig = try VisionTransformer.load(arch: "", weights: fixturesDirectory.appendingPathComponent("hf/dinov2_reg_tiny").path, randomInit: nil)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.normal([1, 3, 56, 56], rng: &rng)
        expectClose(back.features(x, layers: [1])[1]!.patch, orig.features(x, layers: [1])[1]!.patch, rtol: 0, atol: 1e-6, "round trip")
        #expect(throws: (any Error).self) {
            try runDVT(["convert", fixturesDirectory.appendingPathComponent("hf/vit_tiny").path, "--out", dir.appendingPathComponent("x.npy").path])
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.npy").path))
    }

    /// scripts/check_convert_timm.py: timm.create_model from the file's metadata,
    /// load_state_dict(strict=True), and timm's features against transformers' at the
    /// pretraining size (where neither framework resamples).
    @Test(
        "every converted layout loads strict in timm and equals transformers",
        .enabled(
            if: timmPython != nil || onCI,
            "no Python with torch + timm + transformers (run scripts/hf-venv.sh or set DVT_HF_PYTHON); skipping the timm check"))
    func convertLoadsInTimm() throws {
        guard let python = timmPython else {
            Issue.record("CI: no Python with torch + timm + transformers; scripts/test.sh runs scripts/hf-venv.sh to make one")
            return
        }
        let dir = temporaryDirectory("convert-timm")
        defer { try? FileManager.default.removeItem(at: dir) }
        var jobs: [(String, String)] = Self.layouts.map { ($0, "\($0).safetensors") }
        jobs.append(("dinov2_tiny", "dinov2_tiny.pth"))
        var pairs: [String] = []
        for (layout, file) in jobs {
            let snap = fixturesDirectory.appendingPathComponent("hf/\(layout)").path
            let out = dir.appendingPathComponent(file).path
            try runDVT(["convert", snap, "--out", out])
            pairs.append("\(out)=\(snap)")
        }
        // timm checkpoints (the timm conformance fixtures, each with its preset resized) go back
        // to timm too: strict load only (ViTConformanceTests already checks their features).
        for name in Self.timmFixtures {
            let meta =
                try JSONSerialization.jsonObject(with: Data(contentsOf: fixturesDirectory.appendingPathComponent("vit/\(name)/meta.json")))
                as! [String: Any]
            let kw = meta["timm_kwargs"] as! [String: Any]
            var cfg = ViTPresets.named(meta["timm_arch"] as! String)!
            (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (
                kw["embed_dim"] as! Int, kw["depth"] as! Int, kw["num_heads"] as! Int, kw["img_size"] as! Int
            )
            let model = try VisionTransformer(config: cfg, weights: fixturesDirectory.appendingPathComponent("vit/\(name)/weights.safetensors"))
            let out = dir.appendingPathComponent("timm_\(name).safetensors")
            try TimmConversion(model: model).write(to: out)
            pairs.append(out.path)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [repositoryRoot.appendingPathComponent("scripts/check_convert_timm.py").path, "--tol", "1e-5"] + pairs
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let lines = text.split(separator: "\n").filter { $0.contains("strict") || $0.contains("FAILED") }
        for l in lines { print("check_convert_timm: \(l)") }
        #expect(p.terminationStatus == 0, "\(text.suffix(1500))")
        #expect(lines.filter { $0.contains("max abs difference") }.count == jobs.count, "\(text.suffix(1500))")
        #expect(lines.filter { $0.contains("loaded strict") }.count == jobs.count + Self.timmFixtures.count, "\(text.suffix(1500))")
    }
}
