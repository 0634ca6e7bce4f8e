import Foundation
import NN
import TensorCore
import TestSupport
import Testing

/// A small model with a dense MLP and a row-sparse lookup table, so checkpoint tests cover both
/// kinds of optimiser state. x (B, 2) plus a looked-up table row (B, 2) → MLP → (B, 1).
private final class TinyNet: Module {
    let table: Tensor  // (R, 2)
    let mlp: Sequential

    init(seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        table = Tensor.normal([10, 2], std: 0.1, rng: &rng, requiresGrad: true)  // (R, 2)
        mlp = Sequential.reluMLP([2, 8, 1], rng: &rng)
    }

    func namedParameters() -> [(String, Tensor)] { [("table", table)] + prefixed("mlp", mlp.namedParameters()) }

    func callAsFunction(_ x: Tensor, rows: [Int]) -> Tensor { mlp(x + table.gatherRows(rows)) }
}

/// Deterministic batch for `step`: 8 points, 8 table rows out of 10 (so some rows go untouched).
private func batch(_ step: Int) -> (x: Tensor, rows: [Int], y: Tensor) {
    var rng = RandomGenerator(seed: 1000 + UInt64(step))
    let x = Tensor.uniform([8, 2], -1, 1, rng: &rng)  // (B, 2)
    let rows = (0..<8).map { _ in rng.randint(7) }  // rows 7...9 never used
    let y = Tensor((0..<8).map { i in sin(3 * x[flat: 2 * i]) * x[flat: 2 * i + 1] }, shape: [8, 1])  // (B, 1)
    return (x, rows, y)
}

private func trainStep(_ net: TinyNet, _ opt: Adam, _ step: Int, schedule: WarmupCosineSchedule) -> Float {
    let (x, rows, y) = batch(step)
    opt.lr = schedule(step)
    opt.zeroGrad()
    let loss = Tensor.mseLoss(net(x, rows: rows), y)
    loss.backward()
    opt.step()
    return loss.item
}

private func makeOptimizer(_ net: TinyNet) -> Adam {
    let opt = AdamW(parameters: net.namedParameters(), lr: 0.01, weightDecay: 0.01)
    opt.setRowSparse("table", rowWidth: 2)
    return opt
}

@Suite("Training")
struct TrainingTests {
    @Test("A ReLU MLP fits XOR (MSE < 0.01 within 300 Adam steps)")
    func xor() {
        var rng = RandomGenerator(seed: 2024)
        let mlp = Sequential.reluMLP([2, 16, 1], rng: &rng)
        let x = Tensor([0, 0, 0, 1, 1, 0, 1, 1], shape: [4, 2])  // (4, 2)
        let y = Tensor([0, 1, 1, 0], shape: [4, 1])  // (4, 1)
        let opt = Adam(parameters: mlp.namedParameters(), lr: 0.05)
        var loss: Float = .infinity
        var steps = 0
        while steps < 300 && loss >= 0.01 {
            opt.zeroGrad()
            let l = Tensor.mseLoss(mlp(x), y)
            l.backward()
            opt.step()
            loss = l.item
            steps += 1
        }
        let final = withNoGrad { Tensor.mseLoss(mlp(x), y).item }
        #expect(final < 0.01, "XOR loss \(final) after \(steps) steps")
        let predictions = withNoGrad { mlp(x).scalars }
        #expect(zip(predictions, [Float(0), 1, 1, 0]).allSatisfy { abs($0 - $1) < 0.25 }, "predictions \(predictions)")
    }

    func regression(_ makeOpt: ([(String, Tensor)]) -> Adam) -> (loss: Float, weight: [Float], bias: Float) {
        var rng = RandomGenerator(seed: 77)
        let trueW: [Float] = [1, -2, 0.5, 3], trueB: Float = 0.7
        let x = Tensor.normal([64, 4], rng: &rng)  // (64, 4)
        let y = Tensor((0..<64).map { r in (0..<4).reduce(trueB) { $0 + trueW[$1] * x[flat: 4 * r + $1] } }, shape: [64, 1])
        let model = Linear(4, 1, rng: &rng)
        let opt = makeOpt(model.namedParameters())
        let schedule = WarmupCosineSchedule(baseLR: 0.1, minLR: 1e-4, warmupSteps: 20, totalSteps: 400)
        for step in 0..<400 {
            opt.lr = schedule(step)
            opt.zeroGrad()
            Tensor.mseLoss(model(x), y).backward()
            opt.step()
        }
        let loss = withNoGrad { Tensor.mseLoss(model(x), y).item }
        return (loss, model.weight.scalars, model.bias!.item)
    }

    @Test("Linear regression with Adam recovers the weights")
    func regressionAdam() {
        let r = regression { Adam(parameters: $0, lr: 0.1) }
        #expect(r.loss < 1e-6, "loss \(r.loss)")
        expectClose(r.weight + [r.bias], [1, -2, 0.5, 3, 0.7], rtol: 0, atol: 2e-3, "Adam fit")
    }

    @Test("Linear regression with AdamW recovers the weights (small decay)")
    func regressionAdamW() {
        let r = regression { AdamW(parameters: $0, lr: 0.1, weightDecay: 1e-4) }
        #expect(r.loss < 1e-6, "loss \(r.loss)")
        expectClose(r.weight + [r.bias], [1, -2, 0.5, 3, 0.7], rtol: 0, atol: 1e-3, "AdamW fit")
    }

    @Test("Optimiser and model state round-trip; resumed training is bit-identical")
    func checkpointResume() throws {
        let schedule = WarmupCosineSchedule(baseLR: 0.02, minLR: 0.002, warmupSteps: 5, totalSteps: 30)
        let net = TinyNet(seed: 5)
        let opt = makeOptimizer(net)
        var modelSnapshot: [String: Tensor] = [:]
        var optSnapshot: [String: Tensor] = [:]
        for step in 0..<30 {
            if step == 12 {
                modelSnapshot = net.stateDict().mapValues { $0.copy() }
                optSnapshot = opt.stateDict()
            }
            _ = trainStep(net, opt, step, schedule: schedule)
        }
        #expect(optSnapshot["table.row_step"]!.scalars.suffix(3) == [0, 0, 0], "rows 7...9 never touched")
        #expect(optSnapshot["mlp.0.weight.step"]!.item == 12)

        // A fresh model (other init) and optimiser restored from the step-12 checkpoint.
        let resumed = TinyNet(seed: 99)
        try resumed.load(stateDict: modelSnapshot)
        let resumedOpt = makeOptimizer(resumed)
        try resumedOpt.loadStateDict(optSnapshot)
        for step in 12..<30 { _ = trainStep(resumed, resumedOpt, step, schedule: schedule) }
        for ((name, a), (_, b)) in zip(net.namedParameters(), resumed.namedParameters()) {
            #expect(a.scalars == b.scalars, "\(name) differs after resuming")
        }
        let finalA = opt.stateDict(), finalB = resumedOpt.stateDict()
        #expect(Set(finalA.keys) == Set(finalB.keys))
        for (key, t) in finalA { #expect(t.scalars == finalB[key]!.scalars, "optimizer \(key)") }

        // Without the optimiser state the continuation differs (so the comparison above can fail).
        let cold = TinyNet(seed: 99)
        try cold.load(stateDict: modelSnapshot)
        let coldOpt = makeOptimizer(cold)
        for step in 12..<30 { _ = trainStep(cold, coldOpt, step, schedule: schedule) }
        #expect(cold.mlp.namedParameters()[0].1.scalars != net.mlp.namedParameters()[0].1.scalars)
    }

    @Test("loadStateDict names missing, mis-shaped and unexpected keys and keeps the old state")
    func optimizerStateErrors() throws {
        let schedule = WarmupCosineSchedule(baseLR: 0.02, minLR: 0.002, warmupSteps: 5, totalSteps: 30)
        let net = TinyNet(seed: 5)
        let opt = makeOptimizer(net)
        for step in 0..<3 { _ = trainStep(net, opt, step, schedule: schedule) }
        let good = opt.stateDict()
        var bad = good
        bad["mlp.0.weight.exp_avg_sq"] = nil
        bad["mlp.2.bias.exp_avg"] = Tensor(zeros: [3])
        bad["table.row_step"] = Tensor(zeros: [9])
        bad["encoder.weight.exp_avg"] = Tensor(zeros: [1])
        do {
            try opt.loadStateDict(bad)
            Issue.record("loadStateDict should have thrown")
        } catch let error as OptimizerStateError {
            #expect(error.missing == ["mlp.0.weight.exp_avg_sq"])
            #expect(error.unexpected == ["encoder.weight.exp_avg"])
            #expect(error.mismatched.map(\.key) == ["table.row_step", "mlp.2.bias.exp_avg"])
            #expect(error.description.contains("mlp.2.bias.exp_avg: expected shape [1], found [3]"), "\(error)")
        }
        let after = opt.stateDict()
        for (key, t) in good { #expect(after[key]!.scalars == t.scalars, "\(key) changed by a failed load") }
        var fractional = good
        fractional["mlp.0.bias.step"] = Tensor.scalar(2.5)
        #expect(throws: OptimizerStateError(missing: [], unexpected: [], mismatched: [], invalid: ["mlp.0.bias.step"])) {
            try opt.loadStateDict(fractional)
        }
        // A dense optimiser refuses row-sparse state: the row counts are an unexpected key.
        let dense = AdamW(parameters: net.namedParameters())
        #expect(throws: OptimizerStateError.self) { try dense.loadStateDict(good) }
    }

    @Test("Freezing a parameter mid-training leaves it and its optimiser state unchanged")
    func freezeMidTraining() {
        let schedule = WarmupCosineSchedule(baseLR: 0.02, minLR: 0.002, warmupSteps: 5, totalSteps: 30)
        let net = TinyNet(seed: 5)
        let opt = makeOptimizer(net)
        for step in 0..<5 { _ = trainStep(net, opt, step, schedule: schedule) }
        let frozen = net.mlp.namedParameters()[0].1  // mlp.0.weight
        frozen.requiresGrad = false
        let valuesAtFreeze = frozen.scalars
        let stateAtFreeze = opt.stateDict().filter { $0.key.hasPrefix("mlp.0.weight.") }
        let otherAtFreeze = net.mlp.namedParameters()[2].1.scalars  // mlp.2.weight
        for step in 5..<15 { _ = trainStep(net, opt, step, schedule: schedule) }
        #expect(frozen.scalars == valuesAtFreeze, "frozen weight moved")
        #expect(frozen.grad == nil, "a frozen weight should receive no gradient")
        let stateNow = opt.stateDict()
        for (key, t) in stateAtFreeze { #expect(stateNow[key]!.scalars == t.scalars, "\(key) changed while frozen") }
        #expect(net.mlp.namedParameters()[2].1.scalars != otherAtFreeze, "the rest keeps training")
        #expect(opt.stepCount("mlp.0.weight") == 5 && opt.stepCount("mlp.2.weight") == 15)
        // Unfrozen, it resumes from its own step count.
        frozen.requiresGrad = true
        _ = trainStep(net, opt, 15, schedule: schedule)
        #expect(frozen.scalars != valuesAtFreeze)
        #expect(opt.stepCount("mlp.0.weight") == 6)
    }

    @Test("The engine demo's loss falls")
    func demo() {
        var lines: [String] = []
        let result = runEngineDemo(steps: 200, logEvery: 50) { lines.append($0) }
        #expect(lines.count >= 4, "demo log: \(lines)")
        #expect(result.finalLoss < 0.5 * result.initialLoss, "demo loss \(result.initialLoss) → \(result.finalLoss)")
        #expect(result.accuracy > 0.9, "demo accuracy \(result.accuracy)")
    }
}
