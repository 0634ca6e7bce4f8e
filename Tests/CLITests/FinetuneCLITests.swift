import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import TestSupport
import Testing
import Training
import Vision

@testable import DVTCommands

@Suite("dvt finetune")
struct FinetuneCLITests {
    /// Three photos, a random ViT-S/14 at 28 × 42 (a 2 × 3 grid) and a random stage-2 denoiser.
    func setUp(_ dir: URL) throws -> URL {
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for name in ["chelsea", "rocket", "coffee"] {
            try FileManager.default.copyItem(at: photos.appendingPathComponent("\(name).jpg"), to: images.appendingPathComponent("\(name).jpg"))
        }
        try Denoiser(config: DenoiserConfig(dim: 384, grid: (2, 3)), seed: 1).export(to: dir.appendingPathComponent("denoiser.safetensors"))
        let cfg = dir.appendingPathComponent("cfg.yaml")
        try Data(
            """
            model: vit_small_patch14_dinov2
            random_init: 3
            data_list: \(images.path)
            input_size: [28, 42]
            output_dir: \(dir.appendingPathComponent("out").path)
            finetune:
              denoiser: \(dir.appendingPathComponent("denoiser.safetensors").path)
              batch_size: 2
              save_freq: 0
              print_freq: 1
            srt:
              dx: 1
              dy: 1
            """.utf8
        ).write(to: cfg)
        return cfg
    }

    @Test("--teacher dvt fine-tunes, exports a timm state dict that dvt extract --weights reads; --teacher srt runs too")
    func endToEnd() throws {
        let dir = temporaryDirectory("finetune")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = try setUp(dir)
        // thaw last2 keeps the checkpoint small (AdamW state of two blocks); the recipe test covers thaw all.
        try runDVT(["finetune", cfg.path, "--teacher", "dvt", "--set", "finetune.num_iters=2", "finetune.thaw=last2", "--quiet"])
        let run = dir.appendingPathComponent("out/finetune")
        for f in ["metrics.jsonl", "resolved.yaml", "vit.safetensors", "checkpoints/latest.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(f).path), "\(f) missing")
        }
        let weights = run.appendingPathComponent("vit.safetensors")
        let file = try SafeTensorsFile(url: weights)
        let reference = VisionTransformer(config: ViTPresets.named("vit_small_patch14_dinov2")!, seed: 3)
        #expect(Set(file.keys) == Set(reference.namedParameters().map(\.0)), "timm key set")
        for (k, p) in reference.namedParameters() { #expect(try file.shape(of: k) == p.shape, "\(k)") }
        #expect(file.metadata["dvt_finetune_teacher"] == "dvt" && file.metadata["random_init"] == "3")
        // Fine-tuning moved the weights away from the random init they started from.
        #expect(
            try file.tensor("blocks.11.mlp.fc2.weight").scalars != reference.namedParameters().first { $0.0 == "blocks.11.mlp.fc2.weight" }!.1.scalars
        )

        // dvt extract --weights loads the export (by timm name) and writes features.
        let out = dir.appendingPathComponent("features")
        try runDVT([
            "extract", "--arch", "vit_small_patch14_dinov2", "--weights", weights.path, "--size", "28", "42",
            "--images", dir.appendingPathComponent("images").path, "--out", out.path,
        ])
        let feats = try Npy.read(out.appendingPathComponent("rocket.npy"))
        #expect(feats.shape == [2, 3, 384])
        let loaded = try VisionTransformer(config: ViTPresets.named("vit_small_patch14_dinov2")!, weights: weights)
        let x = try loaded.preprocess(dir.appendingPathComponent("images/rocket.jpg"), height: 28, width: 42)
        let direct = loaded.features(x.reshape([1, 3, 28, 42]), layers: [11])[11]!.patch.reshape([2, 3, 384])
        expectClose(feats, direct, rtol: 1e-5, atol: 1e-5, "extract --weights features")

        // The SRT teacher, the last block only (SRT's thaw mode 'last').
        try runDVT([
            "finetune", cfg.path, "--teacher", "srt", "--set", "finetune.num_iters=1", "finetune.thaw=last", "finetune.cache_teacher=disk",
            "finetune.export=\(dir.appendingPathComponent("srt.safetensors").path)", "output_dir=\(dir.appendingPathComponent("out2").path)",
            "--quiet",
        ])
        let cache = dir.appendingPathComponent("out2/finetune/teacher_cache")
        let folders = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        #expect(folders.count == 1, "one fingerprint folder: \(folders)")
        let maps = try folders.first.map { try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent($0).path) } ?? []
        #expect(maps.count == 2, "the step's two maps: \(maps)")
        let srt = try SafeTensorsFile(url: dir.appendingPathComponent("srt.safetensors"))
        #expect(srt.metadata["dvt_finetune_teacher"] == "srt")
        #expect(
            try srt.tensor("blocks.0.attn.qkv.weight").scalars == reference.namedParameters().first { $0.0 == "blocks.0.attn.qkv.weight" }!.1.scalars,
            "thaw last must leave block 0 untouched")
    }

    @Test("--precision bf16 fine-tunes to a finite loss and records bf16 in the export's metadata")
    func bf16() throws {
        let dir = temporaryDirectory("finetune-bf16")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = try setUp(dir)
        try runDVT([
            "finetune", cfg.path, "--teacher", "dvt", "--precision", "bf16", "--set", "finetune.num_iters=2",
            "finetune.thaw=last2", "--quiet",
        ])
        let run = dir.appendingPathComponent("out/finetune")
        let file = try SafeTensorsFile(url: run.appendingPathComponent("vit.safetensors"))
        #expect(file.metadata["precision"] == "bf16")
        let resolved = try String(contentsOf: run.appendingPathComponent("resolved.yaml"), encoding: .utf8)
        #expect(resolved.contains("precision: bf16"), "resolved.yaml records the precision")
        let metrics = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        #expect(!metrics.isEmpty && !metrics.contains("nan"), "two finite steps logged")
    }

    @Test("errors name what is missing: the denoiser file, the teacher")
    func errors() throws {
        let dir = temporaryDirectory("finetune-errors")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = try setUp(dir)
        do {
            try runDVT(["finetune", cfg.path, "--set", "finetune.denoiser=\(dir.path)/nope.safetensors", "--quiet"])
            Issue.record("a missing denoiser must fail")
        } catch {
            #expect("\(error)".contains("nope.safetensors") && "\(error)".contains("dvt stage2"))
        }
        #expect(throws: (any Error).self) { try runDVT(["finetune", cfg.path, "--teacher", "teacher"]) }
    }

    @Test("the recipes: DVT stage 3 and SRT defaults")
    func recipes() throws {
        let c = try ConfigSchema.load(file: nil, overrides: [])
        let dvt = try FinetuneRecipe(config: c, teacher: .dvt, images: 10_240)
        #expect(dvt.batchSize == 512 && dvt.stepsPerEpoch == 20 && dvt.steps == 100 && dvt.loss == .mseCosine && dvt.thaw == .all)
        #expect(abs(dvt.optimizer.lr - 2e-4 * (512.0 / 256).squareRoot()) < 1e-15)
        #expect(dvt.optimizer.schedule == .cosineScheduler && dvt.optimizer.warmupIters == 15 && dvt.optimizer.minLR == 1e-6)
        #expect(dvt.optimizer.weightDecay == 1e-5 && dvt.l2Penalty == 0 && dvt.optimizer.kind == .adamw)
        let srt = try FinetuneRecipe(config: c, teacher: .srt, images: 30)
        #expect(srt.batchSize == 1 && srt.steps == 1500 && srt.loss == .mse && srt.optimizer.lr == 3e-4)
        #expect(srt.optimizer.schedule == .multiStep && srt.optimizer.lrMilestones == [780, 1230] && srt.optimizer.lrDecay == 0.1)
        #expect(srt.optimizer.weightDecay == 0 && srt.l2Penalty == 1e-5)
        // SRT's adjust_lr: epoch e runs at lr · 0.1^#{s in [25, 40] : s < e}.
        let trainer = Trainer(task: try dummyTask(), optimizer: srt.optimizer, loop: LoopSettings(numIters: srt.steps), quiet: true)
        for (epoch, expected) in [(0, 3e-4), (25, 3e-4), (26, 3e-5), (40, 3e-5), (41, 3e-6), (49, 3e-6)] {
            #expect(abs(trainer.learningRate(at: epoch * 30) - expected) < 1e-15, "epoch \(epoch)")
        }
    }

    func dummyTask() throws -> FinetuneTask {
        let vit = VisionTransformer(
            config: {
                var c = ViTPresets.named("vit_small_patch14_dinov2")!; (c.embedDim, c.depth, c.heads) = (8, 1, 1); return c
            }(), seed: 1)
        vit.thaw(.all)
        return try FinetuneTask(student: vit, teacher: FixedTeacher { $0 }, imageCount: 1, options: FinetuneOptions(), seed: 0) { _ in
            Tensor(zeros: [3, 14, 14])
        }
    }
}
