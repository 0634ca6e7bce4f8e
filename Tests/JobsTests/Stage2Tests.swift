import DVT
import Formats
import Foundation
import NN
import Report
import Settings
import TensorCore
import TestSupport
import Testing
import Training
import Vision

@testable import Jobs

/// The suites of this target, grouped as in the test report.
struct JobsSuites {}

/// A stage-1-style feature tree in a temp folder: target maps are random content, raw maps are
/// target + one fixed position-dependent artifact (the thing stage 2 must learn to remove).
struct SyntheticFeatureTree {
    let root: URL
    let model = "tiny_vit"
    let trainList: URL
    let valList: URL
    let trainNames: [String]
    let valNames: [String]

    init(dim: Int = 32, grid: Int = 6, train: Int = 12, val: Int = 4, artifactScale: Float = 0.6, seed: UInt64 = 0) throws {
        root = temporaryDirectory("stage2")
        var rng = RandomGenerator(seed: seed)
        let artifact = Tensor.normal([grid, grid, dim], std: artifactScale, rng: &rng)  // (H, W, C), shared by all maps
        trainNames = (0..<train).map { String(format: "train/img_%02d", $0) }
        valNames = (0..<val).map { String(format: "val/img_%02d", $0) }
        for name in trainNames + valNames {
            let target = Tensor.normal([grid, grid, dim], rng: &rng)  // (H, W, C)
            let raw = withNoGrad { target + artifact }
            try SyntheticFeatureTree.write(raw, FeatureTree.path(root: root, tree: FeatureTree.raw, model: model, relativeStem: name))
            try SyntheticFeatureTree.write(target, FeatureTree.path(root: root, tree: FeatureTree.denoised, model: model, relativeStem: name))
        }
        trainList = root.appendingPathComponent("train.txt")
        valList = root.appendingPathComponent("val.txt")
        // VOC-style lists: image paths (which need not exist for stage 2), extra fields ignored.
        try Data(trainNames.map { "\($0).jpg 0\n" }.joined().utf8).write(to: trainList)
        try Data(valNames.map { "\($0).jpg\n" }.joined().utf8).write(to: valList)
    }

    static func write(_ t: Tensor, _ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Npy.write(t, to: url)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    func overrides(iters: Int, extra: [String] = []) -> [String] {
        [
            "model=\(model)", "data_list=\(trainList.path)", "val_list=\(valList.path)", "output_dir=\(root.path)",
            "stage2.num_iters=\(iters)", "stage2.batch_size=4",
            // lr = base_lr · sqrt(4/256) = 6e-3: the artifact is learnt in 150 steps (longer runs overfit 12 maps).
            "stage2.base_lr=0.048", "stage2.val_freq=50", "stage2.save_freq=50", "stage2.print_freq=25", "seed=0",
        ] + extra
    }
}

/// Forwards to a task and fails at one step, like a run killed after a checkpoint.
final class Interrupting: TrainingTask {
    let inner: TrainingTask
    let failAt: Int?
    let forgetExtraState: Bool
    struct Killed: Error {}

    init(_ inner: TrainingTask, failAt: Int? = nil, forgetExtraState: Bool = false) {
        self.inner = inner
        self.failAt = failAt
        self.forgetExtraState = forgetExtraState
    }

    var parameters: [(String, Tensor)] { inner.parameters }
    var rowSparseParameters: [String: Int] { inner.rowSparseParameters }
    func willStep(_ step: Int, total: Int) { inner.willStep(step, total: total) }
    func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        if step == failAt { throw Killed() }
        return try inner.loss(step: step, rng: &rng)
    }
    func validate(step: Int) throws -> [String: Double] { try inner.validate(step: step) }
    func extraState() -> [String: Tensor] { inner.extraState() }
    func loadExtraState(_ state: [String: Tensor]) throws { if !forgetExtraState { try inner.loadExtraState(state) } }
}

extension JobsSuites {
    @Suite("Stage 2")
    struct Stage2Tests {
        @Test("a tiny run learns to remove a planted position artifact: validation loss falls below the identity baseline")
        func learns() throws {
            let tree = try SyntheticFeatureTree()
            defer { tree.remove() }
            var logLines: [String] = []
            let cfg = try ConfigSchema.load(file: nil, overrides: tree.overrides(iters: 150))
            let out = try Stage2Runner.run(config: cfg, quiet: true, log: { logLines.append($0) })
            let v = out.summary.lastValidation
            let loss = try #require(v["loss"]), identity = try #require(v["identity_loss"])
            #expect(loss < 0.7 * identity, "val loss \(loss) vs identity \(identity)")
            #expect(v["cos"]! > v["identity_cos"]!)
            #expect(logLines.contains { $0.contains("beats the identity baseline") })
            #expect(logLines.contains { $0.contains("12 feature pairs, 0 skipped") })

            // Outputs: resolved config, metrics with the baseline, checkpoints, exported weights, loss curve.
            let dir = tree.root.appendingPathComponent("stage2")
            let resolved = try String(contentsOf: dir.appendingPathComponent("resolved.yaml"), encoding: .utf8)
            #expect(resolved.contains("num_iters: 150"))
            #expect(try ConfigSchema.load(file: dir.appendingPathComponent("resolved.yaml")).values == cfg.values)
            let metrics = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            #expect(metrics.contains("val_identity_loss") && metrics.contains("l2_loss"))
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("checkpoints/step_0000100.safetensors").path))
            let exported = try Denoiser.load(out.denoiserFile)
            #expect(exported.config == DenoiserConfig(dim: 32, grid: (6, 6)))
            let meta = try SafeTensorsFile(url: out.denoiserFile).metadata
            #expect(meta["vit_model"] == "tiny_vit" && meta["layer"] == "-1" && meta["steps"] == "150")
            let png = try RGBImage(contentsOf: out.lossCurve)
            #expect(png.width == 800 && png.height == 480)

            // `dvt export` of the last checkpoint gives the same weights as the run's own export.
            let again = tree.root.appendingPathComponent("again.safetensors")
            try Stage2Runner.export(checkpoint: dir.appendingPathComponent("checkpoints/latest.safetensors"), to: again)
            let a = try SafeTensorsFile(url: again), b = try SafeTensorsFile(url: out.denoiserFile)
            #expect(a.keys == b.keys)
            for k in a.keys { #expect(try a.tensor(k).scalars == b.tensor(k).scalars, "\(k)") }
            #expect(a.metadata == b.metadata)
        }

        static func task(_ tree: SyntheticFeatureTree, initSeed: UInt64) throws -> Stage2Task {
            let train = try FeaturePairIndex.build(
                list: tree.trainList.path, dataRoot: nil, featureRoot: tree.root,
                model: tree.model, targetTree: FeatureTree.denoised)
            let val = try FeaturePairIndex.build(
                list: tree.valList.path, dataRoot: nil, featureRoot: tree.root,
                model: tree.model, targetTree: FeatureTree.denoised)
            let d = try Denoiser(config: DenoiserConfig(dim: 32, grid: (6, 6)), seed: initSeed)
            return try Stage2Task(denoiser: d, train: train.pairs, validation: val.pairs, batchSize: 5, seed: 4)
        }

        /// 30 straight steps vs 25 steps killed after the step-20 checkpoint + resume; returns
        /// every problem found (empty: bit-exact, and a resume without the sampler state differs).
        static func resumeScenario() throws -> [String] {
            let tree = try SyntheticFeatureTree()
            defer { tree.remove() }
            var o = OptimizerSettings()
            o.kind = .adamw; o.lr = 3e-3; o.minLR = 1e-6; o.warmupIters = 4; o.weightDecay = 1e-5
            var l = LoopSettings(numIters: 30)
            l.saveFreq = 10; l.valFreq = 10; l.printFreq = 10; l.seed = 7
            var problems: [String] = []

            let straight = try task(tree, initSeed: 1)
            _ = try Trainer(task: straight, optimizer: o, loop: l, quiet: true).run()

            let dir = tree.root.appendingPathComponent("run")
            let killed = Interrupting(try task(tree, initSeed: 1), failAt: 25)
            do {
                _ = try Trainer(task: killed, optimizer: o, loop: l, runDirectory: dir, quiet: true).run()
                problems.append("the interrupted run did not stop")
            } catch is Interrupting.Killed {}
            let copy = tree.root.appendingPathComponent("run-copy")
            try FileManager.default.copyItem(at: dir, to: copy)

            // Different init: every weight, optimiser moment and the sampler position must come from the step-20 checkpoint.
            let resumed = try task(tree, initSeed: 99)
            _ = try Trainer(task: resumed, optimizer: o, loop: l, runDirectory: dir, quiet: true).run(resume: true)
            for ((n, p1), (_, p2)) in zip(straight.parameters, resumed.parameters) where p1.scalars != p2.scalars {
                let worst = zip(p1.scalars, p2.scalars).map { abs($0 - $1) }.max() ?? 0
                problems.append("\(n) differs after resume (max |Δ| \(worst))")
            }
            if resumed.sampler != straight.sampler { problems.append("sampler \(resumed.sampler) vs \(straight.sampler)") }

            // Without the sampler state the batches after step 20 differ, and so do the weights.
            let forgetful = Interrupting(try task(tree, initSeed: 99), forgetExtraState: true)
            _ = try Trainer(task: forgetful, optimizer: o, loop: l, runDirectory: copy, quiet: true).run(resume: true)
            if forgetful.parameters[0].1.scalars == straight.parameters[0].1.scalars {
                problems.append("a resume without the sampler state matched too: the comparison cannot fail")
            }
            return problems
        }

        // Runs in a child process: the engine's attention sets OpenBLAS's thread count
        // process-wide, and sgemm's low bits depend on it, so attention in a concurrently
        // running test (any target) could change this run's bits. Alone in its process the
        // comparison is exact.
        @Test("resume is bit-exact through the real Trainer and task, sampler state included")
        func resume() async throws {
            // The child always exits 0 when the scenario ran, so its report comes back to us.
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                do {
                    for p in try Stage2Tests.resumeScenario() { FileHandle.standardError.write(Data("resume-problem: \(p)\n".utf8)) }
                } catch {
                    FileHandle.standardError.write(Data("resume-problem: error \(error)\n".utf8))
                }
                exit(0)
            }
            let report = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            let problems = report.split(separator: "\n").filter { $0.hasPrefix("resume-problem: ") }
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        }

        @Test("pairs with a missing raw or target map are skipped, counted and reported")
        func missingPairs() throws {
            let tree = try SyntheticFeatureTree()
            defer { tree.remove() }
            let fm = FileManager.default
            for name in tree.trainNames[0..<2] {
                try fm.removeItem(at: FeatureTree.path(root: tree.root, tree: FeatureTree.raw, model: tree.model, relativeStem: name))
            }
            try fm.removeItem(at: FeatureTree.path(root: tree.root, tree: FeatureTree.denoised, model: tree.model, relativeStem: tree.trainNames[5]))
            let index = try FeaturePairIndex.build(
                list: tree.trainList.path, dataRoot: nil, featureRoot: tree.root,
                model: tree.model, targetTree: FeatureTree.denoised)
            #expect(index.pairs.count == 9)
            #expect(index.missing.map(\.name) == [tree.trainNames[0], tree.trainNames[1], tree.trainNames[5]])
            #expect(index.summary(label: "x").contains("9 feature pairs, 3 skipped"))

            var logLines: [String] = []
            let cfg = try ConfigSchema.load(file: nil, overrides: tree.overrides(iters: 2))
            let out = try Stage2Runner.run(config: cfg, quiet: true, log: { logLines.append($0) })
            #expect(out.train.missing.count == 3)
            #expect(logLines.contains { $0.contains("9 feature pairs, 3 skipped (missing files)") })

            // srt targets come from their own tree; with none written every pair is missing: a clear error.
            let srt = try ConfigSchema.load(file: nil, overrides: tree.overrides(iters: 2, extra: ["stage2.targets=srt"]))
            #expect { try Stage2Runner.run(config: srt, quiet: true, log: { _ in }) } throws: {
                "\($0)".contains("srt_features") && "\($0)".contains("no feature pairs")
            }
        }

        @Test("stage 2 trains on SRT targets (self-distillation) from the srt_features tree")
        func srtTargets() throws {
            let tree = try SyntheticFeatureTree()
            defer { tree.remove() }
            // The SRT tree holds the clean maps; the stage-1 tree is removed so only SRT targets exist.
            for name in tree.trainNames + tree.valNames {
                let target = try Npy.read(FeatureTree.path(root: tree.root, tree: FeatureTree.denoised, model: tree.model, relativeStem: name))
                try SyntheticFeatureTree.write(
                    target, FeatureTree.path(root: tree.root, tree: FeatureTree.srt, model: tree.model, relativeStem: name))
            }
            try FileManager.default.removeItem(at: tree.root.appendingPathComponent(FeatureTree.denoised))
            let cfg = try ConfigSchema.load(file: nil, overrides: tree.overrides(iters: 150, extra: ["stage2.targets=srt"]))
            let out = try Stage2Runner.run(config: cfg, quiet: true, log: { _ in })
            let v = out.summary.lastValidation
            let loss = try #require(v["loss"]), identity = try #require(v["identity_loss"])
            #expect(out.train.pairs.count == 12 && out.train.pairs.allSatisfy { $0.target.path.contains(FeatureTree.srt) })
            #expect(loss < 0.7 * identity, "val loss \(loss) vs identity \(identity)")
        }

        @Test("a map with another grid or width stops the run with the file named")
        func misShaped() throws {
            let tree = try SyntheticFeatureTree(train: 3, val: 1)
            defer { tree.remove() }
            let bad = FeatureTree.path(root: tree.root, tree: FeatureTree.denoised, model: tree.model, relativeStem: tree.trainNames[2])
            try Npy.write(Tensor(zeros: [5, 6, 32]), to: bad)
            let cfg = try ConfigSchema.load(file: nil, overrides: tree.overrides(iters: 6))
            #expect { try Stage2Runner.run(config: cfg, quiet: true, log: { _ in }) } throws: {
                "\($0)".contains(bad.path) && "\($0)".contains("[5, 6, 32]")
            }
        }

        @Test("NaN features stop training at the read, naming the file and index (not only as a NaN loss)")
        func nonFinite() throws {
            let tree = try SyntheticFeatureTree(train: 2, val: 1)
            defer { tree.remove() }
            for name in tree.trainNames {
                let url = FeatureTree.path(root: tree.root, tree: FeatureTree.raw, model: tree.model, relativeStem: name)
                try Npy.write(Tensor(repeating: .nan, shape: [6, 6, 32]), to: url)
            }
            let cfg = try ConfigSchema.load(file: nil, overrides: tree.overrides(iters: 5))
            #expect { _ = try Stage2Runner.run(config: cfg, quiet: true, log: { _ in }) } throws: {
                $0 is Stage2Error && "\($0)".contains("raw_features") && "\($0)".contains("non-finite value nan at index [0, 0, 0]")
            }
        }

        @Test("a checkpoint whose sampler walked another number of pairs is refused, naming the data list")
        func samplerCountChanged() throws {
            let tree = try SyntheticFeatureTree()
            defer { tree.remove() }
            let t = try Self.task(tree, initSeed: 1)
            let other = ShuffledSampler(count: t.sampler.count + 1, seed: 3)
            #expect { try t.loadExtraState(["sampler": other.state]) } throws: {
                $0 is Stage2Error && "\($0)".contains("walked \(t.sampler.count + 1) training pairs, this run has \(t.sampler.count)")
                    && "\($0)".contains("data list or feature tree changed")
            }
        }

        @Test("the loss curve shows train, validation and the identity baseline")
        func lossCurve() throws {
            var h = LossCurve.History()
            h.train = (0..<50).map { LossPoint(step: 1 + 10 * $0, loss: 2 * exp(-Double($0) / 10) + 0.01) }
            h.validation = [LossPoint(step: 100, loss: 0.5), LossPoint(step: 300, loss: 0.1), LossPoint(step: 491, loss: 0.05)]
            h.identity = 0.4
            let img = LossCurve.render(h, title: "stage 2")
            func count(_ c: [UInt8]) -> Int {
                stride(from: 0, to: img.pixels.count, by: 3).filter { Array(img.pixels[$0..<($0 + 3)]) == c }.count
            }
            #expect(count([31, 119, 180]) > 300)  // train line (and legend)
            #expect(count([255, 127, 14]) > 60)  // validation dots and line
            #expect(count([120, 120, 120]) > 200)  // dashed baseline
            #expect(count([0, 0, 0]) > 500)  // axes and labels
            let empty = LossCurve.render(LossCurve.History())
            #expect(empty.width == 800)

            let url = temporaryDirectory("metrics").appendingPathComponent("metrics.jsonl")
            defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
            try Data(
                """
                {"loss":1.5,"step":1}
                {"loss":0.9,"step":10,"val_identity_loss":0.4,"val_loss":0.7}
                {"loss":0.5,"step":20,"val_identity_loss":0.4,"val_loss":0.7}
                {"loss":0.3,"step":30,"val_identity_loss":0.4,"val_loss":0.2}
                """.utf8
            ).write(to: url)
            let read = try LossCurve.read(metrics: url)
            #expect(read.train.map(\.step) == [1, 10, 20, 30])
            #expect(read.validation == [LossPoint(step: 10, loss: 0.7), LossPoint(step: 30, loss: 0.2)])
            #expect(read.identity == 0.4)
        }
    }

}
