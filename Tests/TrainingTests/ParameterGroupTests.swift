import Foundation
import NN
import TensorCore
import Testing

@testable import Training

/// A task whose parameter groups give one weight its own decay and a table row-sparse deferred
/// updates, and that counts its end-of-training hook.
final class GroupedTask: TrainingTask {
    let table = Tensor(repeating: 0, shape: [32, 4])
    let weight: Tensor
    var finished = 0
    var groups: [ParameterGroup]

    init(groups: [ParameterGroup]) {
        var rng = RandomGenerator(seed: 1)
        weight = Tensor.normal([4], rng: &rng)
        table.requiresGrad = true
        weight.requiresGrad = true
        self.groups = groups
    }

    var parameters: [(String, Tensor)] { [("table", table), ("weight", weight)] }
    var parameterGroups: [ParameterGroup] { groups }
    func didFinishTraining() { finished += 1 }

    func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        let rows = table.gatherRows([step % 32, (step * 7) % 32])  // (2, 4)
        return (((rows - 1) * (rows - 1)).mean() + (weight * weight).mean(), [:])
    }
}

@Suite("Parameter groups and end-of-training hooks")
struct ParameterGroupTests {
    @Test("groups set the optimiser's per-parameter decay and row-sparse mode; the hook runs once, after the flush")
    func groups() throws {
        let task = GroupedTask(groups: [
            ParameterGroup(names: ["table"], rowSparse: .init(rowWidth: 4, mode: .deferred)),
            ParameterGroup(names: ["weight"], weightDecay: 0.5),
        ])
        var o = OptimizerSettings()
        o.kind = .adam; o.lr = 0.05; o.weightDecay = 0; o.beta1 = 0.9; o.beta2 = 0.99
        let trainer = Trainer(task: task, optimizer: o, loop: LoopSettings(numIters: 40), quiet: true)
        #expect(trainer.optimizer.weightDecayOverrides == ["weight": 0.5])
        _ = try trainer.run()
        #expect(task.finished == 1)
        // The trainer already flushed the deferred rows: flushing again changes nothing, while
        // rows last touched before the final step would otherwise be caught up here.
        let after = task.table.scalars
        trainer.optimizer.flushDeferredRows()
        #expect(task.table.scalars == after)
        // Without the weight's group its decay is the optimiser's (0), so it ends elsewhere.
        let plain = GroupedTask(groups: [])
        _ = try Trainer(task: plain, optimizer: o, loop: LoopSettings(numIters: 40), quiet: true).run()
        #expect(plain.weight.scalars != task.weight.scalars && plain.finished == 1)
    }
}
