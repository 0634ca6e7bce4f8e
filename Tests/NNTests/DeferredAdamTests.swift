import Foundation
import NN
import TensorCore
import TestSupport
import Testing

/// Row-sparse Adam in deferred mode: dense Adam's result at the cost of the touched rows.
@Suite("Row-sparse Adam, deferred mode")
struct DeferredAdamTests {
    static let rows = 40, width = 3, steps = 120

    /// Sparse gradients: every row but the never-touched ones (r % 10 == 9) on step 0, then row r
    /// with a probability depending on r (some every step, some rarely); a warmup-then-cosine
    /// learning rate, as DVT uses.
    static func gradient(step: Int) -> [Float] {
        var rng = RandomGenerator(seed: 500 + UInt64(step))
        var g = [Float](repeating: 0, count: rows * width)
        for r in 0..<rows where r % 10 != 9 {
            let p = r < 5 ? 1.0 : 1.0 / Double(1 + r % 7 * 3)
            if step == 0 || rng.uniformDouble() < p {
                for j in 0..<width { g[r * width + j] = rng.uniform(-1, 1) + (j == 0 ? 1.5 : 0) }
            }
        }
        return g
    }

    static func lr(_ step: Int) -> Double {
        adjustLearningRate(step: Double(step), baseLR: 0.05, minLR: 0.005, warmupSteps: 10, totalSteps: Double(steps))
    }

    static func initial() -> [Float] {
        var rng = RandomGenerator(seed: 77)
        return (0..<(rows * width)).map { _ in rng.uniform(-1, 1) }
    }

    /// Runs `steps` steps (from `from`), the gradient set as a plain tensor (full scan) or with a
    /// touched-row list, like the hash-grid backward leaves it.
    static func run(_ opt: Adam, _ p: Tensor, from: Int = 0, to: Int = steps) {
        for step in from..<to {
            opt.lr = lr(step)
            p.grad = Tensor(gradient(step: step), shape: p.shape)
            opt.step()
        }
    }

    @Test("After a flush, deferred equals dense torch Adam (no weight decay), rows idle for long spans included")
    func matchesDense() {
        let dense = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let deferred = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let lazy = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let denseOpt = Adam(parameters: [("t", dense)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        let deferredOpt = Adam(parameters: [("t", deferred)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        deferredOpt.setRowSparse("t", rowWidth: Self.width, mode: .deferred)
        let lazyOpt = Adam(parameters: [("t", lazy)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        lazyOpt.setRowSparse("t", rowWidth: Self.width)
        Self.run(denseOpt, dense)
        Self.run(deferredOpt, deferred)
        Self.run(lazyOpt, lazy)
        let beforeFlush = deferred.scalars
        deferredOpt.flushDeferredRows()
        expectClose(deferred.scalars, dense.scalars, rtol: 2e-4, atol: 2e-5, "deferred + flush vs dense")
        // The comparison means something: lazy Adam ends elsewhere, and the flush itself moved rows.
        #expect(closeness(lazy.scalars, dense.scalars, rtol: 2e-4, atol: 2e-5).firstBad != nil, "lazy should differ from dense")
        #expect(beforeFlush != deferred.scalars, "rows idle at the end have pending momentum steps")
        // Never-touched rows (r % 10 == 9) stay put in both (no weight decay).
        for r in stride(from: 9, to: Self.rows, by: 10) {
            for j in 0..<Self.width { #expect(deferred[flat: r * Self.width + j] == Self.initial()[r * Self.width + j]) }
        }
        // Moments agree too (they decayed on idle steps).
        let ds = denseOpt.stateDict(), fs = deferredOpt.stateDict()
        expectClose(fs["t.exp_avg"]!.scalars, ds["t.exp_avg"]!.scalars, rtol: 1e-4, atol: 1e-7, "exp_avg")
        expectClose(fs["t.exp_avg_sq"]!.scalars, ds["t.exp_avg_sq"]!.scalars, rtol: 1e-4, atol: 1e-9, "exp_avg_sq")
        // A second flush has nothing left to do.
        let once = deferred.scalars
        deferredOpt.flushDeferredRows()
        #expect(deferred.scalars == once)
    }

    @Test("Weight decay: touched rows get the L2 term, idle steps skip it (documented approximation)")
    func weightDecayStaysClose() {
        let dense = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let deferred = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let denseOpt = Adam(parameters: [("t", dense)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15, weightDecay: 1e-5)
        let deferredOpt = Adam(parameters: [("t", deferred)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15, weightDecay: 1e-5)
        deferredOpt.setRowSparse("t", rowWidth: Self.width, mode: .deferred)
        Self.run(denseOpt, dense)
        Self.run(deferredOpt, deferred)
        deferredOpt.flushDeferredRows()
        // Rows touched from step 0 on agree closely: on their idle steps wd·p is tiny next to the
        // real gradients still held in m and v. (Never-touched rows differ: dense Adam with
        // ε = 1e-15 turns wd·p alone into sign steps of size lr on them, which deferred skips.)
        var touched: [Float] = [], touchedDense: [Float] = []
        for r in 0..<Self.rows where r % 10 != 9 {
            for j in 0..<Self.width {
                touched.append(deferred[flat: r * Self.width + j]); touchedDense.append(dense[flat: r * Self.width + j])
            }
        }
        expectClose(touched, touchedDense, rtol: 5e-3, atol: 5e-3, "touched rows with weight decay")
    }

    @Test("Checkpoint mid-run and resume: bit-identical to the uninterrupted run; keys and shapes")
    func resume() throws {
        let a = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let optA = Adam(parameters: [("t", a)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        optA.setRowSparse("t", rowWidth: Self.width, mode: .deferred)
        Self.run(optA, a)

        let b = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let optB = Adam(parameters: [("t", b)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        optB.setRowSparse("t", rowWidth: Self.width, mode: .deferred)
        Self.run(optB, b, to: 50)
        let saved = optB.stateDict()
        #expect(Set(saved.keys) == ["t.exp_avg", "t.exp_avg_sq", "t.step", "t.row_last_step", "t.tail_sum"])
        #expect(saved["t.tail_sum"]!.shape == [51] && saved["t.row_last_step"]!.shape == [Self.rows])
        let weights = b.copy()

        let c = Tensor(zeros: [Self.rows, Self.width], requiresGrad: true)
        c.assign(weights)
        let optC = Adam(parameters: [("t", c)], lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        optC.setRowSparse("t", rowWidth: Self.width, mode: .deferred)
        try optC.loadStateDict(saved)
        Self.run(optC, c, from: 50)
        #expect(c.scalars == a.scalars, "resumed run must equal the uninterrupted one")

        // A lazy-mode checkpoint does not load into a deferred optimiser (and says why).
        let lazyOpt = Adam(
            parameters: [("t", Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true))],
            lr: 0.05, betas: (0.9, 0.99), eps: 1e-15)
        lazyOpt.setRowSparse("t", rowWidth: Self.width)
        Self.run(lazyOpt, lazyOpt.parameters[0].1, to: 3)
        #expect(throws: OptimizerStateError.self) { try optC.loadStateDict(lazyOpt.stateDict()) }
    }
}
