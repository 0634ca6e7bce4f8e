import Formats
import Foundation
import NN
import TensorCore
import TestSupport
import Testing
import Vision

@testable import Training

/// A small regression task: y = x·w* + noise, fitted by a Linear layer; the batch is drawn from the trainer's RNG.
final class RegressionTask: TrainingTask {
    let layer: Linear
    let x: Tensor, y: Tensor
    var poison: Int? = nil
    var crashAt: Int? = nil
    struct Crash: Error {}

    init(seed: UInt64, initSeed: UInt64? = nil) {
        var rng = RandomGenerator(seed: seed)
        var initRng = RandomGenerator(seed: initSeed ?? seed)
        layer = Linear(4, 2, rng: &initRng)
        let inputs = Tensor.normal([64, 4], rng: &rng)
        let wTrue = Tensor.normal([2, 4], rng: &rng)
        x = inputs
        y = withNoGrad { Tensor.linear(inputs, wTrue) }
    }

    var parameters: [(String, Tensor)] { layer.namedParameters() }

    func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        if let crashAt, step == crashAt { throw Crash() }
        let idx = (0..<16).map { _ in rng.randint(64) }
        var loss = Tensor.mseLoss(layer(x.gatherRows(idx)), y.gatherRows(idx))
        if let poison, step >= poison { loss = loss * Tensor.scalar(.nan) }
        return (loss, ["batch_mean": Double(loss.item)])
    }

    func validate(step: Int) throws -> [String: Double] {
        ["mse": Double(Tensor.mseLoss(layer(x), y).item)]
    }
}

@Suite("Trainer")
struct TrainerTests {
    func tempDir() -> URL { temporaryDirectory("trainer") }

    func settings() -> (OptimizerSettings, LoopSettings) {
        var o = OptimizerSettings()
        o.kind = .adamw
        o.lr = 0.05; o.minLR = 0.001; o.warmupIters = 5; o.weightDecay = 1e-4
        var l = LoopSettings(numIters: 60)
        l.printFreq = 10; l.saveFreq = 20; l.valFreq = 20; l.seed = 3
        return (o, l)
    }

    @Test("the loss falls, metrics.jsonl and checkpoints are written")
    func learns() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var (o, l) = settings()
        o.lr = 0.1
        l.numIters = 200
        let task = RegressionTask(seed: 1)
        let t = Trainer(task: task, optimizer: o, loop: l, runDirectory: dir, quiet: true)
        let s = try t.run()
        #expect(s.lossHistory.first!.loss > 10 * s.finalLoss)
        #expect(s.lastValidation["mse"]! < 0.05)
        let lines = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 21)  // step 1 and every 10th
        #expect(lines.last!.contains("\"step\":200") && lines.last!.contains("val_mse"))
        for step in [20, 100, 200] {
            #expect(
                FileManager.default.fileExists(atPath: dir.appendingPathComponent(String(format: "checkpoints/step_%07d.safetensors", step)).path))
        }
        // Warmup from 0, then cosine to the floor.
        #expect(t.learningRate(at: 0) == 0)
        #expect(abs(t.learningRate(at: 5) - 0.1) < 1e-12)
        #expect(t.learningRate(at: 200) <= 0.001 + 1e-12)
    }

    @Test("resume is bit-exact: N+M steps equal N steps, resume, then M steps")
    func resume() throws {
        let (o, l) = settings()
        let straight = RegressionTask(seed: 2)
        _ = try Trainer(task: straight, optimizer: o, loop: l, quiet: true).run()

        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A run that dies at step 25, after its step-20 checkpoint.
        let a = RegressionTask(seed: 2)
        a.crashAt = 25
        #expect(throws: RegressionTask.Crash.self) { _ = try Trainer(task: a, optimizer: o, loop: l, runDirectory: dir, quiet: true).run() }

        let b = RegressionTask(seed: 2, initSeed: 99)  // different init: everything must come from the checkpoint
        _ = try Trainer(task: b, optimizer: o, loop: l, runDirectory: dir, quiet: true).run(resume: true)
        for ((n1, p1), (_, p2)) in zip(straight.parameters, b.parameters) {
            #expect(p1.scalars == p2.scalars, "\(n1) differs after resume")
        }
        // And a resume with no optimiser state would not match (the comparison can fail).
        let c = RegressionTask(seed: 2)
        _ = try Trainer(
            task: c, optimizer: o,
            loop: {
                var x = l; x.numIters = 40; return x
            }(), quiet: true
        ).run()
        #expect(c.parameters[0].1.scalars != straight.parameters[0].1.scalars)
    }

    @Test("a second process on the same run folder is refused with a clear error (issue 18)")
    func runFolderLock() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (o, l) = settings()
        // Another live holder of the folder's lock (flock is per open file, so this stands in for
        // a second process).
        let other = try FileLock.tryAcquire(dir.appendingPathComponent(".lock"))
        #expect(other != nil)
        #expect { _ = try Trainer(task: RegressionTask(seed: 1), optimizer: o, loop: l, runDirectory: dir, quiet: true).run() } throws: {
            "\($0)".contains("another dvt process is training in \(dir.path)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("metrics.jsonl").path))
        withExtendedLifetime(other) {}
    }

    @Test("a non-finite loss stops training with a clear error and keeps the last good checkpoint")
    func nonFinite() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (o, l) = settings()
        let task = RegressionTask(seed: 4)
        task.poison = 45
        let t = Trainer(task: task, optimizer: o, loop: l, runDirectory: dir, quiet: true)
        do {
            _ = try t.run()
            Issue.record("expected a non-finite loss error")
        } catch let e as TrainerError {
            #expect(e.description.contains("step 45"))
            #expect(e.description.contains("step_0000040.safetensors"))
        }
        let latest = try SafeTensorsFile(url: t.latestCheckpoint!)
        #expect(latest.metadata["step"] == "40")
    }

    @Test("a checkpoint for another model is rejected with the keys that do not fit")
    func badCheckpoint() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (o, l) = settings()
        let t = Trainer(task: RegressionTask(seed: 5), optimizer: o, loop: l, runDirectory: dir, quiet: true)
        try t.saveCheckpoint(step: 3, rng: RandomGenerator(seed: 0))
        final class Other: TrainingTask {
            let w = Tensor(zeros: [3, 3], requiresGrad: true)
            var parameters: [(String, Tensor)] { [("weight", w)] }
            func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) { (w.sum(), [:]) }
        }
        let other = Trainer(task: Other(), optimizer: o, loop: l, runDirectory: dir, quiet: true)
        #expect(throws: TrainerError.self) { _ = try other.loadCheckpoint(t.latestCheckpoint!) }
    }
}

extension TrainerTests {
    @Test("a resumed run's metrics.jsonl holds the same steps as an uninterrupted run's (no extra line at the resume step)")
    func resumedMetricsSteps() throws {
        let (o, l) = settings()
        func steps(_ dir: URL) throws -> [Int] {
            try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
                let obj = try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                return (obj["step"] as! NSNumber).intValue
            }
        }
        let straight = tempDir(), resumed = tempDir()
        defer { for d in [straight, resumed] { try? FileManager.default.removeItem(at: d) } }
        _ = try Trainer(task: RegressionTask(seed: 2), optimizer: o, loop: l, runDirectory: straight, quiet: true).run()
        // Dies at step 25 (after its step-20 checkpoint), then resumes twice over: once from 20 to
        // a second death at 45, once from 40 to the end.
        let a = RegressionTask(seed: 2)
        a.crashAt = 25
        #expect(throws: RegressionTask.Crash.self) { _ = try Trainer(task: a, optimizer: o, loop: l, runDirectory: resumed, quiet: true).run() }
        let b = RegressionTask(seed: 2)
        b.crashAt = 45
        #expect(throws: RegressionTask.Crash.self) {
            _ = try Trainer(task: b, optimizer: o, loop: l, runDirectory: resumed, quiet: true).run(resume: true)
        }
        _ = try Trainer(task: RegressionTask(seed: 2), optimizer: o, loop: l, runDirectory: resumed, quiet: true).run(resume: true)
        #expect(try steps(straight) == [1, 10, 20, 30, 40, 50, 60])
        #expect(try steps(resumed) == steps(straight))
    }
}
