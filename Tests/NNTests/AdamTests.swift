import Foundation
import NN
import TensorCore
import TestSupport
import Testing

/// Adam/AdamW written out in Double straight from the torch docs, independent of the library's
/// Float kernel, for comparison.
private func referenceAdam(
    _ p0: [Double], grads: [[Double]], lr: Double, betas: (Double, Double) = (0.9, 0.999),
    eps: Double = 1e-8, weightDecay: Double, decoupled: Bool
) -> [[Double]] {
    var p = p0
    var m = [Double](repeating: 0, count: p.count)
    var v = m
    var history: [[Double]] = []
    for (k, g0) in grads.enumerated() {
        let t = Double(k + 1)
        for i in p.indices {
            var g = g0[i]
            if decoupled { p[i] *= 1 - lr * weightDecay } else { g += weightDecay * p[i] }
            m[i] = betas.0 * m[i] + (1 - betas.0) * g
            v[i] = betas.1 * v[i] + (1 - betas.1) * g * g
            let mHat = m[i] / (1 - pow(betas.0, t))
            let vHat = v[i] / (1 - pow(betas.1, t))
            p[i] -= lr * mHat / (vHat.squareRoot() + eps)
        }
        history.append(p)
    }
    return history
}

/// Runs `steps` optimiser steps on a single named parameter with the given gradients.
private func runSteps(_ opt: Adam, _ p: Tensor, _ grads: [[Float]]) -> [[Float]] {
    var history: [[Float]] = []
    for g in grads {
        p.grad = Tensor(g, shape: p.shape)
        opt.step()
        history.append(p.scalars)
    }
    return history
}

@Suite("Adam and AdamW")
struct AdamTests {
    let p0: [Float] = [1, -2, 0.5]
    let grads: [[Float]] = [[0.1, -0.2, 0.3], [-0.5, 0.1, 0.2], [0.05, 0.4, -0.3]]

    @Test("Adam with L2 weight decay matches torch's formula on a 3-element example")
    func adamMatchesFormula() {
        let p = Tensor(p0, shape: [3], requiresGrad: true)
        let opt = Adam(parameters: [("p", p)], lr: 0.1, weightDecay: 0.1)
        let got = runSteps(opt, p, grads)
        let want = referenceAdam(
            p0.map(Double.init), grads: grads.map { $0.map(Double.init) }, lr: 0.1,
            weightDecay: 0.1, decoupled: false)
        for k in grads.indices {
            expectClose(got[k], want[k].map(Float.init), rtol: 1e-6, atol: 1e-6, "Adam step \(k + 1)")
        }
        #expect(opt.stepCount("p") == 3)
    }

    @Test("weightDecayOverrides: the named parameter uses its own decay, the others the default")
    func perParameterWeightDecay() {
        let a = Tensor(p0, shape: [3], requiresGrad: true), b = Tensor(p0, shape: [3], requiresGrad: true)
        let opt = Adam(parameters: [("a", a), ("b", b)], lr: 0.1, weightDecay: 0.1)
        opt.weightDecayOverrides["b"] = 0
        for g in grads {
            a.grad = Tensor(g, shape: [3]); b.grad = Tensor(g, shape: [3])
            opt.step()
        }
        let wantA = referenceAdam(
            p0.map(Double.init), grads: grads.map { $0.map(Double.init) }, lr: 0.1,
            weightDecay: 0.1, decoupled: false
        ).last!
        let wantB = referenceAdam(
            p0.map(Double.init), grads: grads.map { $0.map(Double.init) }, lr: 0.1,
            weightDecay: 0, decoupled: false
        ).last!
        expectClose(a.scalars, wantA.map(Float.init), rtol: 1e-6, atol: 1e-6, "default decay")
        expectClose(b.scalars, wantB.map(Float.init), rtol: 1e-6, atol: 1e-6, "overridden decay")
    }

    @Test("AdamW decoupled decay matches torch's formula on a 3-element example")
    func adamWMatchesFormula() {
        let p = Tensor(p0, shape: [3], requiresGrad: true)
        let opt = AdamW(parameters: [("p", p)], lr: 0.1, weightDecay: 0.1)
        let got = runSteps(opt, p, grads)
        let want = referenceAdam(
            p0.map(Double.init), grads: grads.map { $0.map(Double.init) }, lr: 0.1,
            weightDecay: 0.1, decoupled: true)
        for k in grads.indices {
            expectClose(got[k], want[k].map(Float.init), rtol: 1e-6, atol: 1e-6, "AdamW step \(k + 1)")
        }
    }

    @Test("Hand-derived values: first steps move by lr·sign(g), second step by lr·m̂/√v̂")
    func literalValues() {
        // Step 1: m̂ = g and √v̂ = |g|, so p ← p − lr·sign(g) (up to ε). With Adam's L2 term
        // g' = g + 0.1·p = (0.2, −0.4, 0.35): same signs, so p = (0.9, −1.9, 0.4).
        // AdamW first scales p by 1 − 0.1·0.1 = 0.99: (0.99, −1.98, 0.495), then ∓0.1.
        let a = Tensor(p0, shape: [3], requiresGrad: true)
        _ = runSteps(Adam(parameters: [("a", a)], lr: 0.1, weightDecay: 0.1), a, [grads[0]])
        expectClose(a.scalars, [0.9, -1.9, 0.4], rtol: 0, atol: 1e-6, "Adam step 1 literal")
        let w = Tensor(p0, shape: [3], requiresGrad: true)
        _ = runSteps(AdamW(parameters: [("w", w)], lr: 0.1, weightDecay: 0.1), w, [grads[0]])
        expectClose(w.scalars, [0.89, -1.88, 0.395], rtol: 0, atol: 1e-6, "AdamW step 1 literal")

        // Two steps on p = 1 with g = 0.1 then 0.3, lr 0.1, no decay:
        // m2 = 0.9·0.01 + 0.1·0.3 = 0.039; v2 = 0.999·1e-5 + 0.001·0.09 = 9.999e-5
        // 1 − β1² = 0.19, 1 − β2² = 0.001999
        // step 2 moves by 0.1/0.19 · 0.039 / (√9.999e-5 / √0.001999) = 0.5263158·0.039/0.2236513 = 0.091778
        // p2 = 0.9 − 0.091778 = 0.808222
        let s = Tensor([1], shape: [1], requiresGrad: true)
        let hist = runSteps(Adam(parameters: [("s", s)], lr: 0.1), s, [[0.1], [0.3]])
        #expect(abs(hist[0][0] - 0.9) < 1e-6)
        #expect(abs(hist[1][0] - 0.808222) < 2e-6, "got \(hist[1][0])")
    }

    @Test("Learning rate is read on every step")
    func lrPerStep() {
        let p = Tensor(p0, shape: [3], requiresGrad: true)
        let opt = Adam(parameters: [("p", p)], lr: 0.1)
        p.grad = Tensor(grads[0], shape: [3])
        opt.lr = 0  // a zero learning rate must not move the weights (warmup step 0)
        opt.step()
        #expect(p.scalars == p0)
        opt.lr = 0.1
        p.grad = Tensor(grads[1], shape: [3])
        opt.step()
        // Step 2 at lr 0.1: the moments still carry step 1's gradient (lr 0 only skipped the move).
        let g1 = grads[0].map(Double.init), g2 = grads[1].map(Double.init)
        var expected: [Float] = []
        for i in 0..<3 {
            let m = 0.9 * 0.1 * g1[i] + 0.1 * g2[i]
            let v = 0.999 * 0.001 * g1[i] * g1[i] + 0.001 * g2[i] * g2[i]
            let upd = 0.1 * (m / 0.19) / ((v / (1 - 0.999 * 0.999)).squareRoot() + 1e-8)
            expected.append(Float(Double(p0[i]) - upd))
        }
        expectClose(p.scalars, expected, rtol: 1e-6, atol: 1e-6, "step with lr restored")
    }

    @Test("zeroGrad drops every owned gradient; parameters without a gradient are skipped")
    func zeroGradAndSkip() {
        let a = Tensor(p0, shape: [3], requiresGrad: true)
        let b = Tensor([4, 5], shape: [2], requiresGrad: true)
        let opt = Adam(parameters: [("a", a), ("b", b)], lr: 0.1)
        a.grad = Tensor(grads[0], shape: [3])
        opt.step()
        #expect(b.scalars == [4, 5], "a parameter with no gradient must not move")
        #expect(opt.stepCount("b") == 0)
        #expect(opt.stateDict()["b.exp_avg"] == nil)
        opt.zeroGrad()
        #expect(a.grad == nil && b.grad == nil)
    }
}

@Suite("Row-sparse Adam")
struct SparseAdamTests {
    static let rows = 6, width = 3
    static let everyStep = [0, 2, 5]
    static let sometimes = 1  // touched on steps 1 and 4 only
    static let sometimesSteps: Set<Int> = [1, 4]
    static let never = [3, 4]
    static let steps = 6

    /// Gradient for `step`: random non-zero rows for `everyStep` (and `sometimes` on its steps), zero elsewhere.
    static func gradient(step: Int) -> [Float] {
        var rng = RandomGenerator(seed: 100 + UInt64(step))
        var g = [Float](repeating: 0, count: rows * width)
        var touched = everyStep
        if sometimesSteps.contains(step) { touched.append(sometimes) }
        for r in touched {
            for j in 0..<width { g[r * width + j] = rng.uniform(-1, 1) + (j == 0 ? 2 : 0) }  // row never all-zero
        }
        return g
    }

    static func initial() -> [Float] {
        var rng = RandomGenerator(seed: 9)
        return (0..<(rows * width)).map { _ in rng.uniform(-1, 1) }
    }

    func rowsOf(_ values: [Float], _ rows: [Int]) -> [Float] {
        rows.flatMap { Array(values[($0 * Self.width)..<(($0 + 1) * Self.width)]) }
    }

    func run(decoupled: Bool) {
        let dense = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        let sparse = Tensor(Self.initial(), shape: [Self.rows, Self.width], requiresGrad: true)
        // Weight decay on: dense Adam then moves untouched rows too, sparse must not.
        let make: ([(String, Tensor)]) -> Adam = { params in
            decoupled
                ? AdamW(parameters: params, lr: 0.05, betas: (0.9, 0.99), eps: 1e-15, weightDecay: 0.01)
                : Adam(parameters: params, lr: 0.05, betas: (0.9, 0.99), eps: 1e-15, weightDecay: 0.01)
        }
        let denseOpt = make([("table", dense)])
        let sparseOpt = make([("table", sparse)])
        sparseOpt.setRowSparse("table", rowWidth: Self.width)
        // A separate dense Adam fed only the steps that touch the intermittent row: lazy Adam with a
        // per-row step count must reproduce it on that row.
        let lone = Tensor(rowsOf(Self.initial(), [Self.sometimes]), shape: [Self.width], requiresGrad: true)
        let loneOpt = make([("row", lone)])
        for step in 0..<Self.steps {
            let g = Self.gradient(step: step)
            dense.grad = Tensor(g, shape: dense.shape)
            sparse.grad = Tensor(g, shape: sparse.shape)
            denseOpt.step()
            sparseOpt.step()
            if Self.sometimesSteps.contains(step) {
                lone.grad = Tensor(rowsOf(g, [Self.sometimes]), shape: [Self.width])
                loneOpt.step()
            }
        }
        let tag = decoupled ? "AdamW" : "Adam"
        // Rows touched every step: bit-identical to dense, values and moments.
        #expect(rowsOf(sparse.scalars, Self.everyStep) == rowsOf(dense.scalars, Self.everyStep), "\(tag) values")
        let ds = denseOpt.stateDict(), ss = sparseOpt.stateDict()
        for key in ["table.exp_avg", "table.exp_avg_sq"] {
            #expect(rowsOf(ss[key]!.scalars, Self.everyStep) == rowsOf(ds[key]!.scalars, Self.everyStep), "\(tag) \(key)")
        }
        // Untouched rows: values unchanged, moments still zero, row step 0 (while dense moved them).
        #expect(rowsOf(sparse.scalars, Self.never) == rowsOf(Self.initial(), Self.never), "\(tag) untouched values")
        #expect(rowsOf(dense.scalars, Self.never) != rowsOf(Self.initial(), Self.never), "dense decay should move untouched rows")
        for key in ["table.exp_avg", "table.exp_avg_sq"] {
            #expect(rowsOf(ss[key]!.scalars, Self.never).allSatisfy { $0 == 0 }, "\(tag) \(key) untouched")
        }
        let rowSteps = ss["table.row_step"]!.scalars
        #expect(rowSteps == [6, 2, 6, 0, 0, 6], "\(tag) per-row step counts \(rowSteps)")
        #expect(ss["table.step"]!.item == 6)
        // Intermittent row: equals Adam that saw only its own steps.
        #expect(rowsOf(sparse.scalars, [Self.sometimes]) == lone.scalars, "\(tag) intermittent row")
    }

    @Test("Sparse Adam equals dense Adam on rows touched every step and leaves untouched rows alone")
    func adam() { run(decoupled: false) }

    @Test("Sparse AdamW equals dense AdamW on rows touched every step and leaves untouched rows alone")
    func adamW() { run(decoupled: true) }
}

@Suite("Adam on large tensors (parallel kernel)")
struct LargeAdamTests {
    @Test("Dense and row-sparse kernels, split over threads, match the formula and each other")
    func parallelPaths() {
        // 60 000 rows × 2 = 120 000 elements: above both kernels' grain, so the work is split.
        let rows = 60_000, width = 2
        var rng = RandomGenerator(seed: 3)
        let initial = (0..<(rows * width)).map { _ in rng.uniform(-1, 1) }
        let dense = Tensor(initial, shape: [rows, width], requiresGrad: true)
        let sparse = Tensor(initial, shape: [rows, width], requiresGrad: true)
        let denseOpt = Adam(parameters: [("t", dense)], lr: 0.01, weightDecay: 0.001)
        let sparseOpt = Adam(parameters: [("t", sparse)], lr: 0.01, weightDecay: 0.001)
        sparseOpt.setRowSparse("t", rowWidth: width)
        let everyStep = Set(stride(from: 0, to: rows, by: 3))  // every third row, on every step
        var reference = initial.map(Double.init)
        var grads: [[Double]] = []
        for step in 0..<3 {
            var g = [Float](repeating: 0, count: rows * width)
            for r in 0..<rows {
                // Every-third rows always; the rest on odd steps only for a few rows.
                if everyStep.contains(r) || (step == 1 && r % 7 == 1) {
                    for j in 0..<width { g[r * width + j] = rng.uniform(0.1, 1) }
                }
            }
            grads.append(g.map(Double.init))
            dense.grad = Tensor(g, shape: [rows, width])
            sparse.grad = Tensor(g, shape: [rows, width])
            denseOpt.step()
            sparseOpt.step()
        }
        // Dense against the Double formula, element by element, at a sample of indices.
        for i in stride(from: 0, to: rows * width, by: 997) {
            reference[i] = referenceOne(Double(initial[i]), grads.map { $0[i] })
        }
        let d = dense.scalars, s = sparse.scalars
        var worst: Double = 0
        for i in stride(from: 0, to: rows * width, by: 997) { worst = max(worst, abs(Double(d[i]) - reference[i])) }
        #expect(worst < 1e-6, "dense kernel vs formula: max |Δ| \(worst)")
        var sameTouched = true, untouchedKept = true
        for r in 0..<rows {
            for j in 0..<width {
                let i = r * width + j
                if everyStep.contains(r) { sameTouched = sameTouched && d[i] == s[i] }
                if !everyStep.contains(r) && r % 7 != 1 { untouchedKept = untouchedKept && s[i] == initial[i] }
            }
        }
        #expect(sameTouched, "sparse rows touched every step must equal dense")
        #expect(untouchedKept, "sparse rows never touched must keep their values")
    }

    private func referenceOne(_ p0: Double, _ gs: [Double]) -> Double {
        var p = p0, m = 0.0, v = 0.0
        for (k, g0) in gs.enumerated() {
            let t = Double(k + 1), g = g0 + 0.001 * p
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            p -= 0.01 * (m / (1 - pow(0.9, t))) / ((v / (1 - pow(0.999, t))).squareRoot() + 1e-8)
        }
        return p
    }
}
