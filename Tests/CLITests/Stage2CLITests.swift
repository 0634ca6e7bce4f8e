import ArgumentParser
import Bench
import DVT
import DVTCommands
import Formats
import Foundation
import Jobs
import ONNX
import Settings
import TensorCore
import TestSupport
import Testing
import Training
import Vision

@Suite("dvt stage2 / export / denoise")
struct Stage2CLITests {
    let root: URL
    let model = "tiny_vit"

    init() throws {
        root = temporaryDirectory("cli")
    }

    func url(_ rel: String) -> URL { root.appendingPathComponent(rel) }

    func writeMap(_ t: Tensor, _ rel: String) throws {
        let u = url(rel)
        try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Npy.write(t, to: u)
    }

    /// A stage-1 output tree (raw = target + a fixed artifact) for `names`, C 32, 6 × 6.
    func writeTree(_ names: [String]) throws {
        var rng = RandomGenerator(seed: 9)
        let artifact = Tensor.normal([6, 6, 32], std: 0.6, rng: &rng)
        for n in names {
            let target = Tensor.normal([6, 6, 32], rng: &rng)
            try writeMap(withNoGrad { target + artifact }, "out/raw_features/\(model)/\(n).npy")
            try writeMap(target, "out/denoised_features/\(model)/\(n).npy")
        }
    }

    @Test("stage2 trains from a config, export writes the official layout, denoise --features mirrors the tree")
    func endToEnd() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let train = (0..<6).map { "JPEGImages/a/img_\($0)" }, val = ["JPEGImages/b/img_9"]
        try writeTree(train + val)
        try Data(train.map { "\($0).jpg\n" }.joined().utf8).write(to: url("train.txt"))
        try Data(val.map { "\($0).jpg\n" }.joined().utf8).write(to: url("val.txt"))
        try Data(
            """
            model: \(model)
            data_list: \(url("train.txt").path)
            val_list: \(url("val.txt").path)
            output_dir: \(url("out").path)
            stage2:
              batch_size: 2
              base_lr: 0.05
              num_iters: 100
              save_freq: 10
              val_freq: 10
              print_freq: 10
            """.utf8
        ).write(to: url("cfg.yaml"))

        try runDVT(["stage2", url("cfg.yaml").path, "--set", "stage2.num_iters=20", "stage2.warmup_ratio=0.1", "--quiet"])
        let dir = url("out/stage2")
        let resolved = try String(contentsOf: dir.appendingPathComponent("resolved.yaml"), encoding: .utf8)
        #expect(resolved.contains("num_iters: 20  # from override"))
        #expect(resolved.contains("batch_size: 2  # from \(url("cfg.yaml").path)"))
        for f in ["metrics.jsonl", "denoiser.safetensors", "loss_curve.png", "checkpoints/step_0000010.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), "\(f) missing")
        }

        // Export of the step-10 checkpoint: its weights, official keys, architecture metadata.
        let exported = url("denoiser10.safetensors")
        try runDVT(["export", dir.appendingPathComponent("checkpoints/step_0000010.safetensors").path, "--out", exported.path])
        let file = try SafeTensorsFile(url: exported),
            ckpt = try SafeTensorsFile(url: dir.appendingPathComponent("checkpoints/step_0000010.safetensors"))
        #expect(file.keys.contains("pos_embed") && file.keys.contains("denoiser.attn.qkv.weight"))
        for k in file.keys { #expect(try file.tensor(k).scalars == ckpt.tensor("model." + k).scalars, "\(k)") }
        #expect(file.metadata["vit_model"] == model && file.metadata["steps"] == "10" && file.metadata["noise_map_height"] == "6")
        // A .pth --out exports the official {"denoiser": state dict} archive (--format pth): same weights.
        let pth = url("denoiser10.pth")
        try runDVT(["export", dir.appendingPathComponent("checkpoints/step_0000010.safetensors").path, "--out", pth.path])
        let fromPth = try Denoiser.load(pth).namedParameters(), fromST = try Denoiser.load(exported).namedParameters()
        #expect(fromPth.map(\.0) == fromST.map(\.0))
        for ((k, a), (_, b)) in zip(fromPth, fromST) { #expect(a.scalars == b.scalars, "\(k)") }
        // --out x.onnx: the same weights as an ONNX graph (official names), the run's provenance
        // in metadata_props; a --format that contradicts the extension is refused.
        let onnx = url("denoiser10.onnx")
        try runDVT(["export", dir.appendingPathComponent("checkpoints/step_0000010.safetensors").path, "--out", onnx.path])
        let graph = try ONNXModel(contentsOf: onnx)
        let weights = try graph.initializers { $0.name == "pos_embed" || $0.name.hasPrefix("denoiser.") }
        #expect(Set(weights.keys) == Set(file.keys))
        for k in file.keys { #expect(try weights[k]?.scalars == file.tensor(k).scalars, "\(k)") }
        #expect(graph.metadata["vit_model"] == model && graph.metadata["steps"] == "10" && graph.metadata["noise_map_height"] == "6")
        #expect { try runDVT(["export", exported.path, "--out", pth.path, "--format", "onnx"]) } throws: { "\($0)".contains("contradicts") }

        // Denoise the raw tree (plus one unreadable and one mis-shaped map): outputs mirror it,
        // equal the library call, and the bad inputs are listed with a nonzero exit.
        let rawDir = url("out/raw_features/\(model)")
        try Data("not an npy file".utf8).write(to: rawDir.appendingPathComponent("JPEGImages/junk.npy"))
        try Npy.write(Tensor(zeros: [6, 6, 16]), to: rawDir.appendingPathComponent("JPEGImages/narrow.npy"))
        #expect(throws: ExitCode.self) {
            try runDVT(["denoise", "--denoiser", exported.path, "--features", rawDir.path, "--out", url("denoised").path, "--batch", "4", "--vis"])
        }
        let d = try Denoiser.load(exported)
        for n in train + val {
            let x = try Npy.read(rawDir.appendingPathComponent(n + ".npy"))
            let y = try Npy.read(url("denoised/\(n).npy"))
            expectClose(y, d.denoise(x), rtol: 1e-5, atol: 1e-5, n)
        }
        #expect(!FileManager.default.fileExists(atPath: url("denoised/JPEGImages/junk.npy").path))
        // --vis: raw PCA | denoised PCA | raw norms | denoised norms, 6 × 6 tokens shown at 228 px.
        let strip = try RGBImage(contentsOf: url("denoised/vis/\(train[0]).png"))
        #expect(strip.width == 4 * 228 + 3 * 4 && strip.height == 228)
    }

    @Test("denoise --images runs the ViT then the denoiser, batched, resampling pos_embed to the ViT grid; bad images fail the run")
    func images() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        var rng = RandomGenerator(seed: 3)
        for (i, name) in ["imgs/x/a.png", "imgs/x/b.png", "imgs/c.png"].enumerated() {
            let px = (0..<(40 * 30 * 3)).map { _ in UInt8(rng.randint(256)) }
            let u = url(name)
            try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
            try RGBImage(width: 40 - i, height: 30, pixels: Array(px.prefix((40 - i) * 30 * 3))).write(to: u)
        }
        try Data("this is not a png".utf8).write(to: url("imgs/broken.png"))
        // vit_small: C 384; trained grid 3 × 3, the ViT at 28 × 42 gives 2 × 3.
        let d = try Denoiser(config: DenoiserConfig(dim: 384, grid: (3, 3)), seed: 4)
        try d.export(to: url("d.safetensors"))
        let args = [
            "denoise", "--denoiser", url("d.safetensors").path, "--images", url("imgs").path, "--out", url("o").path,
            "--arch", "vit_small_patch14_dinov2.lvd142m", "--random-init", "0", "--size", "28", "42", "--batch", "2", "--vis",
        ]
        #expect(throws: ExitCode.self) { try runDVT(args) }

        let vit = try VisionTransformer.load(arch: "vit_small_patch14_dinov2.lvd142m", weights: nil, randomInit: 0)
        for rel in ["x/a", "x/b", "c"] {
            let x = try vit.preprocess(url("imgs/\(rel).png"), height: 28, width: 42).reshape([1, 3, 28, 42])
            let f = vit.features(x, layers: [11])[11]!.patch  // (1, 2, 3, 384)
            let expected = d.denoise(f).reshape([2, 3, 384])
            let got = try Npy.read(url("o/\(rel).npy"))
            expectClose(got, expected, rtol: 1e-4, atol: 1e-4, rel)
        }
        #expect(!FileManager.default.fileExists(atPath: url("o/broken.npy").path))
        // --vis with images: the image tile first, then the four feature tiles (2 × 3 tokens, 75 px each: 150 × 225).
        let strip = try RGBImage(contentsOf: url("o/vis/x/a.png"))
        #expect(strip.width == 5 * 225 + 4 * 4 && strip.height == 150)
        #expect(try String(contentsOf: url("o/RANDOM_WEIGHTS_WARNING.txt"), encoding: .utf8).contains("RANDOM WEIGHTS"))
    }

    @Test("bad invocations are rejected with a clear message")
    func usage() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        #expect { try runDVT(["denoise", "--denoiser", "d.safetensors", "--out", "o"]) } throws: {
            DVTCommand.message(for: $0).contains("exactly one of --images")
        }
        try Data("stage2:\n  num_iter: 5\n".utf8).write(to: url("typo.yaml"))
        #expect { try runDVT(["stage2", url("typo.yaml").path]) } throws: {
            "\($0)".contains("Did you mean 'stage2.num_iters'")
        }
        #expect { try runDVT(["export", url("nothing.safetensors").path, "--out", url("x.safetensors").path]) } throws: { _ in true }
    }
}

@Suite("dvt stage2 under SIGKILL")
struct Stage2KillTests {
    @Test("killing stage 2 at a random point and rerunning with --resume gives the uninterrupted run's denoiser, with no partial files")
    func killAndResume() throws {
        _ = try requireExecutable()
        let base = temporaryDirectory("stage2-kill")
        defer { try? FileManager.default.removeItem(at: base) }
        var rng = RandomGenerator(seed: 4)
        let artifact = Tensor.normal([4, 4, 16], std: 0.5, rng: &rng)
        var names: [String] = []
        func makeRun(_ dir: URL) throws -> URL {
            var r = RandomGenerator(seed: 7)
            for i in 0..<6 {
                let target = Tensor.normal([4, 4, 16], rng: &r)
                for (tree, t) in [("raw_features", withNoGrad { target + artifact }), ("denoised_features", target)] {
                    let u = dir.appendingPathComponent("out/\(tree)/tiny/img\(i).npy")
                    try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Npy.write(t, to: u)
                }
            }
            names = (0..<6).map { "img\($0)" }
            try Data(names.map { "\($0).jpg\n" }.joined().utf8).write(to: dir.appendingPathComponent("train.txt"))
            let cfg = dir.appendingPathComponent("cfg.yaml")
            try Data(
                """
                model: tiny
                data_list: \(dir.appendingPathComponent("train.txt").path)
                output_dir: \(dir.appendingPathComponent("out").path)
                stage2:
                  batch_size: 2
                  base_lr: 0.05
                  num_iters: 400
                  save_freq: 5
                  val_freq: 0
                  print_freq: 50
                """.utf8
            ).write(to: cfg)
            return cfg
        }
        let refDir = base.appendingPathComponent("ref"), killDir = base.appendingPathComponent("kill")
        for d in [refDir, killDir] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        let refCfg = try makeRun(refDir), killCfg = try makeRun(killDir)
        let (s0, t0) = try runExecutable(["stage2", refCfg.path, "--quiet", "--threads", "1"])
        #expect(s0 == 0, "\(t0)")

        // Kill at a random point after the first checkpoint, twice, then finish with --resume.
        var killer = RandomGenerator(seed: UInt64(Date().timeIntervalSince1970))
        let latest = killDir.appendingPathComponent("out/stage2/checkpoints/latest.safetensors")
        for _ in 0..<2 {
            let p = Process()
            p.executableURL = dvtExecutable!
            p.arguments = ["stage2", killCfg.path, "--quiet", "--threads", "1", "--resume"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(60)
            while !FileManager.default.fileExists(atPath: latest.path) && p.isRunning && Date() < deadline { usleep(10_000) }
            usleep(useconds_t(killer.randint(400_000)))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        let (s1, t1) = try runExecutable(["stage2", killCfg.path, "--quiet", "--threads", "1", "--resume"])
        #expect(s1 == 0, "\(t1)")
        // A kill can land inside an atomic write and leave its temporary file; the rerun removes it.
        let files = try FileManager.default.subpathsOfDirectory(atPath: killDir.appendingPathComponent("out").path)
        #expect(!files.contains { $0.contains(".tmp-") }, "partial files: \(files.filter { $0.contains(".tmp-") })")
        let a = try SafeTensorsFile(url: refDir.appendingPathComponent("out/stage2/denoiser.safetensors")).loadAll()
        let b = try SafeTensorsFile(url: killDir.appendingPathComponent("out/stage2/denoiser.safetensors")).loadAll()
        #expect(a.keys.sorted() == b.keys.sorted())
        for (k, v) in a {
            let same = v.scalars == b[k]?.scalars
            #expect(same, "\(k) differs from the uninterrupted run")
        }
    }
}

@Suite("dvt bench planted-stage2")
struct PlantedStage2CLITests {
    @Test("end to end on tiny cases: prints the scores, writes the trees and planted_stage2.json; bad --dim is rejected")
    func tiny() throws {
        let dir = temporaryDirectory("planted-stage2")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { try runDVT(["bench", "planted-stage2", "--dim", "48"]) } throws: {
            DVTCommand.message(for: $0).contains("multiple of 64")
        }
        _ = try requireExecutable()
        let cfg = dir.appendingPathComponent("planted.yaml")
        try Data(
            """
            output_dir: \(dir.appendingPathComponent("out").path)
            stage1: {num_iters: 30, pixel_bsz: 128, n_levels: 4, n_features_per_level: 2, log2_hashmap_size: 10, base_resolution: 4, max_resolution: 32}
            stage2: {num_iters: 20, batch_size: 2, val_freq: 10, save_freq: 10, print_freq: 10}
            """.utf8
        ).write(to: cfg)
        let (status, out) = try runExecutable([
            "bench", "planted-stage2", cfg.path, "--train-cases", "2", "--val-cases", "1",
            "--grid", "6", "--views", "4", "--quiet",
        ])
        #expect(status == 0, "\(out)")
        #expect(out.contains("validation (1 held-out cases; stage 2 trained on 2 for 20 steps)"))
        #expect(out.contains("centred cosine to truth"))
        let root = dir.appendingPathComponent("out")
        for path in [
            "raw_features/planted/case_000.npy", "denoised_features/planted/case_002.npy",
            "truth_features/planted/case_001.npy", "train.txt", "val.txt", "stage2/denoiser.safetensors",
            "planted_stage2.json",
        ] {
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path), "\(path)")
        }
        #expect(try String(contentsOf: root.appendingPathComponent("val.txt"), encoding: .utf8) == "case_002\n")
    }
}
