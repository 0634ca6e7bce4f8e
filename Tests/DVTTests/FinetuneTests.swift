import DVT
import Foundation
import NN
import TensorCore
import TestSupport
import Testing
import Training
import Vision

/// Fine-tuning the ViT (DVT stage 3 / SRT self-distillation) as a task of the one trainer.
@Suite("ViT fine-tuning")
struct FinetuneTests {
    /// A DINOv2-style ViT small enough for tests: C 32, 2 blocks, patch 14, 4 × 4 pretraining grid.
    static func tinyViT(seed: UInt64) -> VisionTransformer {
        var cfg = ViTPresets.named("vit_small_patch14_dinov2")!
        (cfg.embedDim, cfg.depth, cfg.heads, cfg.imageSize) = (32, 2, 2, 56)
        return VisionTransformer(config: cfg, seed: seed)
    }

    /// `n` seeded normalised images (3, 56, 56).
    static func images(_ n: Int, seed: UInt64) -> [Tensor] {
        var rng = RandomGenerator(seed: seed)
        return (0..<n).map { _ in Tensor.normal([3, 56, 56], rng: &rng) }
    }

    static func optimizer(lr: Double) -> OptimizerSettings {
        var o = OptimizerSettings()
        o.kind = .adamw
        o.lr = lr
        o.schedule = .multiStep  // constant: no milestones
        return o
    }

    /// A teacher that is another network's features of the same batch (what a frozen ViT +
    /// denoiser is to the student).
    static func teacher(_ vit: VisionTransformer) -> FixedTeacher {
        FixedTeacher { x in vit.features(x, layers: [vit.config.depth - 1])[vit.config.depth - 1]!.patch }
    }

    @Test(
        "fine-tuning a tiny ViT towards a fixed target network lowers the loss (both losses, with the SRT penalty)",
        arguments: [FinetuneLoss.mseCosine, .l1])
    func learns(_ kind: FinetuneLoss) throws {
        let student = Self.tinyViT(seed: 1), target = Self.tinyViT(seed: 2)
        student.thaw(.all)
        let data = Self.images(4, seed: 3)
        var options = FinetuneOptions()
        options.loss = kind
        options.batchSize = 2
        options.l2Penalty = kind == .l1 ? 1e-5 : 0
        let task = try FinetuneTask(
            student: student, teacher: Self.teacher(target), imageCount: data.count,
            options: options, seed: 4
        ) { data[$0] }
        var loop = LoopSettings(numIters: 40)
        loop.printFreq = 1
        let summary = try Trainer(task: task, optimizer: Self.optimizer(lr: 3e-3), loop: loop, quiet: true).run()
        let first = summary.lossHistory.first!.loss, last = summary.lossHistory.suffix(4).map(\.loss).reduce(0, +) / 4
        #expect(last < 0.6 * first, "\(kind): loss \(first) → \(last)")
        if kind == .l1 { #expect(summary.lastMetrics["reg"] != nil && summary.lastMetrics["emp_risk"] != nil) }
    }

    @Test("a frozen part stays frozen: thaw last trains only the last block and the final norm")
    func thawLast() throws {
        let student = Self.tinyViT(seed: 1), target = Self.tinyViT(seed: 2)
        student.thaw(.last)
        let before = student.namedParameters().map { ($0.0, $0.1.copy()) }
        let data = Self.images(2, seed: 3)
        var options = FinetuneOptions()
        options.loss = .mse
        let task = try FinetuneTask(student: student, teacher: Self.teacher(target), imageCount: 2, options: options, seed: 4) { data[$0] }
        _ = try Trainer(task: task, optimizer: Self.optimizer(lr: 1e-3), loop: LoopSettings(numIters: 2), quiet: true).run()
        for ((name, p), (_, old)) in zip(student.namedParameters(), before) {
            let changed = p.scalars != old.scalars
            #expect(changed == (name.hasPrefix("blocks.1.") || name.hasPrefix("norm.")), "\(name) changed: \(changed)")
        }
    }

    @Test("a planted position artifact: fine-tuning towards the clean network lowers the position-variance ratio")
    func plantedArtifact() throws {
        let clean = Self.tinyViT(seed: 5), student = Self.tinyViT(seed: 5)
        // The artifact: a fixed position pattern added to the student's position embedding, the
        // kind of input-independent, position-tied signal DVT removes.
        var rng = RandomGenerator(seed: 6)
        let pos = student.posEmbed!
        let planted = Tensor.normal(pos.shape, std: 0.5, rng: &rng)
        for i in 0..<pos.count where i >= pos.shape[2] { pos[flat: i] += planted[flat: i] }  // patch rows only
        student.invalidatePositionCache()
        let held = Self.images(6, seed: 7)
        func ratio(_ vit: VisionTransformer) throws -> Float {
            try ArtifactMetrics.positionVarianceRatio(
                held.map {
                    vit.features($0.reshape([1, 3, 56, 56]), layers: [1])[1]!.patch.reshape([4, 4, 32])
                })
        }
        let cleanRatio = try ratio(clean), before = try ratio(student)
        #expect(before > cleanRatio + 0.1, "the planted artifact should show: \(before) vs clean \(cleanRatio)")
        student.thaw(.all)
        let data = Self.images(8, seed: 8)
        var options = FinetuneOptions()
        options.batchSize = 4
        let task = try FinetuneTask(student: student, teacher: Self.teacher(clean), imageCount: data.count, options: options, seed: 9) { data[$0] }
        _ = try Trainer(task: task, optimizer: Self.optimizer(lr: 3e-3), loop: LoopSettings(numIters: 60), quiet: true).run()
        student.freeze()
        let after = try ratio(student)
        #expect(after < before - 0.5 * (before - cleanRatio), "position-variance ratio \(before) → \(after) (clean \(cleanRatio))")
    }

    struct Crash: Error {}

    @Test("resume is bit-exact: a run killed after its checkpoint and resumed equals the straight run")
    func resume() throws {
        let target = Self.tinyViT(seed: 2)
        let data = Self.images(5, seed: 3)
        var options = FinetuneOptions()
        options.batchSize = 2
        var loop = LoopSettings(numIters: 6)
        loop.saveFreq = 3
        loop.seed = 11
        func task(_ student: VisionTransformer, crashAfter: Int? = nil) throws -> FinetuneTask {
            student.thaw(.all)
            var calls = 0
            let teacher = Self.teacher(target)
            let guarded = FixedTeacher { x in
                calls += 1
                if let crashAfter, calls > crashAfter { throw Crash() }
                return try teacher.targets(x)
            }
            return try FinetuneTask(student: student, teacher: guarded, imageCount: data.count, options: options, seed: 12) { data[$0] }
        }
        let o = Self.optimizer(lr: 1e-3)
        let straight = Self.tinyViT(seed: 1)
        _ = try Trainer(task: try task(straight), optimizer: o, loop: loop, quiet: true).run()

        let dir = temporaryDirectory("finetune-resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: Crash.self) {
            _ = try Trainer(task: try task(Self.tinyViT(seed: 1), crashAfter: 4), optimizer: o, loop: loop, runDirectory: dir, quiet: true).run()
        }
        let resumed = Self.tinyViT(seed: 99)  // different init: everything must come from the checkpoint
        _ = try Trainer(task: try task(resumed), optimizer: o, loop: loop, runDirectory: dir, quiet: true).run(resume: true)
        for ((name, a), (_, b)) in zip(straight.namedParameters(), resumed.namedParameters()) {
            #expect(a.scalars == b.scalars, "\(name) differs after resume")
        }
    }

    @Test("per-block checkpointing trains to the same weights; flips mirror the input")
    func checkpointingAndFlip() throws {
        let target = Self.tinyViT(seed: 2)
        let data = Self.images(3, seed: 3)
        func train(_ checkpoint: Bool) throws -> VisionTransformer {
            let s = Self.tinyViT(seed: 1)
            s.thaw(.all)
            var options = FinetuneOptions()
            options.checkpointBlocks = checkpoint
            options.cacheTeacher = true
            let task = try FinetuneTask(student: s, teacher: Self.teacher(target), imageCount: 3, options: options, seed: 4) { data[$0] }
            _ = try Trainer(task: task, optimizer: Self.optimizer(lr: 1e-3), loop: LoopSettings(numIters: 4), quiet: true).run()
            return s
        }
        let a = try train(false), b = try train(true)
        for ((name, p), (_, q)) in zip(a.namedParameters(), b.namedParameters()) {
            expectClose(q, p, rtol: 1e-5, atol: 1e-6, name)
        }
        let x = Tensor((0..<12).map(Float.init), shape: [1, 2, 6])
        #expect(x.flipped(axis: -1).scalars == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6])
    }
}

@Suite("ViT fine-tuning, data-parallel shards")
struct FinetuneShardTests {
    @Test("the mean of two ranks' slice gradients is the global batch's gradient, with the same flips")
    func shards() throws {
        let target = FinetuneTests.tinyViT(seed: 2)
        let data = FinetuneTests.images(4, seed: 3)
        func gradients(_ shard: (Int, Int)) throws -> [String: [Float]] {
            let s = FinetuneTests.tinyViT(seed: 1)
            s.thaw(.all)
            var options = FinetuneOptions()
            options.batchSize = 4
            options.l2Penalty = 1e-3
            let task = try FinetuneTask(student: s, teacher: FinetuneTests.teacher(target), imageCount: 4, options: options, seed: 5) { data[$0] }
            task.shard = shard
            var rng = RandomGenerator(seed: 6)
            try task.loss(step: 0, rng: &rng).loss.backward()
            return Dictionary(uniqueKeysWithValues: s.namedParameters().map { ($0.0, $0.1.grad!.scalars) })
        }
        let whole = try gradients((0, 1)), a = try gradients((0, 2)), b = try gradients((1, 2))
        #expect(a["norm.weight"]! != whole["norm.weight"]! && a["norm.weight"]! != b["norm.weight"]!, "each rank must see its own slice")
        for (k, g) in whole {
            let mean = zip(a[k]!, b[k]!).map { ($0 + $1) / 2 }
            expectClose(mean, g, rtol: 1e-4, atol: 1e-6, k)
        }
    }
}

@Suite("ViT fine-tuning, teacher cache on disk")
struct FinetuneTeacherCacheTests {
    struct TeacherCalled: Error {}

    @Test("a second run reads every teacher map from the cache folder and trains to the same weights")
    func diskCache() throws {
        let target = FinetuneTests.tinyViT(seed: 2)
        let data = FinetuneTests.images(3, seed: 3)
        let dir = temporaryDirectory("teacher-cache")
        defer { try? FileManager.default.removeItem(at: dir) }
        func train(_ teacher: FinetuneTeacher) throws -> VisionTransformer {
            let s = FinetuneTests.tinyViT(seed: 1)
            s.thaw(.all)
            var options = FinetuneOptions()
            options.batchSize = 3
            let task = try FinetuneTask(student: s, teacher: teacher, imageCount: 3, options: options, seed: 4) { data[$0] }
            task.teacherCacheDirectory = dir
            var loop = LoopSettings(numIters: 8)
            loop.seed = 7
            _ = try Trainer(task: task, optimizer: FinetuneTests.optimizer(lr: 1e-3), loop: loop, quiet: true).run()
            return s
        }
        let first = try train(FinetuneTests.teacher(target))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".npy") }
        #expect(files.count >= 3 && files.count <= 6, "\(files)")  // 3 images × the flips drawn
        let second = try train(FixedTeacher { _ in throw TeacherCalled() })
        for ((k, a), (_, b)) in zip(first.namedParameters(), second.namedParameters()) { #expect(a.scalars == b.scalars, "\(k)") }
    }
}
