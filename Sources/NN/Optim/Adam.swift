import Foundation
import TensorCore

/// Adam, with torch.optim.Adam's update, term for term (single-tensor path, no amsgrad):
///
/// ```
/// t ← t + 1
/// g ← g + wd·p                       (Adam only: L2 folded into the gradient)
/// p ← p·(1 − lr·wd)                  (AdamW only: decoupled decay, before the update)
/// m ← m + (1 − β1)·(g − m)           (torch's lerp_ for weight < 0.5)
/// v ← β2·v + (1 − β2)·g·g
/// p ← p − (lr / (1 − β1^t))·m / (√v / √(1 − β2^t) + ε)
/// ```
///
/// Bias corrections and the step size are computed in Double, as torch does in Python, then used
/// as Float scalars in the Float element loop.
///
/// **Row-sparse (lazy) mode.** `setRowSparse(name, rowWidth:)` declares a parameter as a table of
/// rows (a hash-grid table). On `step()` a row whose gradient is entirely zero is skipped: its
/// values and both moments stay as they are and its own step count does not advance. A touched
/// row is updated exactly as dense Adam would, bias-corrected with its *own* step count (the number
/// of steps that touched it), so a row touched on every step is bit-identical to dense Adam.
/// L2/decoupled weight decay applies to touched rows only. This is tiny-cuda-nn's Adam, which
/// returns early for entries whose gradient is exactly zero and keeps a step counter per entry
/// (`include/tiny-cuda-nn/optimizers/adam.h`); we keep the counter per row. When the gradient
/// carries a touched-row list (`grad.touchedRows`, written by the hash-grid backward) only the
/// listed rows are visited, so a step costs O(touched rows) rather than O(table); otherwise the
/// whole gradient is scanned for non-zero rows. The list must name every row with a non-zero
/// gradient (kernels that track rows guarantee it).
///
/// - Paper: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015);
///   Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019) for AdamW.
/// - Reference: https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
public class Adam: Optimizer {
    public let parameters: [(String, Tensor)]
    public var lr: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double
    /// True for AdamW: decay multiplies the weights instead of entering the gradient.
    public let decoupledWeightDecay: Bool

    /// Per-parameter state, created on the parameter's first update (as torch does).
    final class State {
        let expAvg: Tensor     // same shape as the parameter
        let expAvgSq: Tensor   // same shape as the parameter
        var step: Int          // updates applied to this parameter
        var rowSteps: Tensor?  // (rows): per-row step counts, row-sparse parameters only

        init(expAvg: Tensor, expAvgSq: Tensor, step: Int, rowSteps: Tensor?) {
            self.expAvg = expAvg
            self.expAvgSq = expAvgSq
            self.step = step
            self.rowSteps = rowSteps
        }
    }

    var states: [String: State] = [:]
    /// Row width of each parameter declared row-sparse.
    public private(set) var rowWidths: [String: Int] = [:]

    /// - Parameters:
    ///   - parameters: named parameters (`module.namedParameters()`); frozen ones may be included,
    ///     they are skipped while `requiresGrad` is false.
    ///   - lr, betas, eps, weightDecay: torch.optim.Adam's defaults (1e-3, (0.9, 0.999), 1e-8, 0).
    public convenience init(parameters: [(String, Tensor)], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                            eps: Double = 1e-8, weightDecay: Double = 0) {
        self.init(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: false)
    }

    init(parameters: [(String, Tensor)], lr: Double, betas: (Double, Double), eps: Double, weightDecay: Double,
         decoupled: Bool) {
        var seen = Set<String>()
        for (name, _) in parameters {
            precondition(seen.insert(name).inserted, "Adam: parameter name '\(name)' appears twice")
        }
        self.parameters = parameters
        self.lr = lr
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupled
    }

    /// Declares `name` row-sparse: its elements are rows of `rowWidth` values (e.g. a (T, F) table
    /// with `rowWidth` F). If the parameter already has dense state, every row inherits its step count.
    public func setRowSparse(_ name: String, rowWidth: Int) {
        guard let p = parameters.first(where: { $0.0 == name })?.1 else {
            preconditionFailure("setRowSparse: no parameter named '\(name)' (have \(parameters.map(\.0)))")
        }
        precondition(rowWidth > 0 && p.count % rowWidth == 0,
                     "setRowSparse: '\(name)' has \(p.count) elements (shape \(p.shape)), not a multiple of row width \(rowWidth)")
        rowWidths[name] = rowWidth
        if let s = states[name], s.rowSteps == nil {
            s.rowSteps = Tensor(repeating: Float(s.step), shape: [p.count / rowWidth])
        }
    }

    // MARK: Update

    /// Scalars of one update, as Float, in the form the element loop uses them.
    struct Coefficients {
        var oneMinusBeta1: Float
        var beta2: Float
        var oneMinusBeta2: Float
        var l2: Float          // Adam's L2 term (0 for AdamW)
        var decay: Float       // AdamW's 1 − lr·wd (1 for Adam)
        var eps: Float
    }

    /// −lr/(1 − β1^t) and √(1 − β2^t), in Double like torch's Python-side arithmetic, then as Float.
    @inline(__always)
    static func biasTerms(step: Int, lr: Double, beta1: Double, beta2: Double) -> (negStepSize: Float, bc2Sqrt: Float) {
        let t = Double(step)
        let bc1 = 1 - Foundation.pow(beta1, t)
        let bc2 = 1 - Foundation.pow(beta2, t)
        return (Float(-(lr / bc1)), Float(bc2.squareRoot()))
    }

    /// The element update over `range`. Kept as one function so dense and row-sparse paths
    /// perform the identical float operations.
    @inline(__always)
    static func update(_ range: Range<Int>, p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>,
                       m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                       c: Coefficients, negStepSize: Float, bc2Sqrt: Float, decoupled: Bool) {
        for i in range {
            var gi = g[i]
            var pi = p[i]
            if decoupled {
                pi = pi * c.decay
            } else if c.l2 != 0 {
                gi = gi + c.l2 * pi
            }
            let mi = m[i] + c.oneMinusBeta1 * (gi - m[i])
            let vi = v[i] * c.beta2 + c.oneMinusBeta2 * gi * gi
            m[i] = mi
            v[i] = vi
            let denom = vi.squareRoot() / bc2Sqrt + c.eps
            p[i] = pi + negStepSize * mi / denom
        }
    }

    public func step() {
        let c = Coefficients(oneMinusBeta1: Float(1 - beta1), beta2: Float(beta2), oneMinusBeta2: Float(1 - beta2),
                             l2: decoupledWeightDecay ? 0 : Float(weightDecay),
                             decay: decoupledWeightDecay ? Float(1 - lr * weightDecay) : 1,
                             eps: Float(eps))
        let decoupled = decoupledWeightDecay
        for (name, p) in parameters {
            guard p.requiresGrad, let grad = p.grad else { continue }
            precondition(grad.shape == p.shape, "Adam: gradient of '\(name)' has shape \(grad.shape), parameter \(p.shape)")
            let s = state(for: name, p)
            s.step += 1
            let pp = p.ptr, pg = grad.ptr, pm = s.expAvg.ptr, pv = s.expAvgSq.ptr
            if let width = rowWidths[name], let rowSteps = s.rowSteps {
                let rows = p.count / width
                let ps = rowSteps.ptr
                let (lr, b1, b2) = (self.lr, beta1, beta2)
                // Rows touched on the same steps share a step count: reuse the last bias terms.
                @inline(__always) func updateRow(_ r: Int, _ cachedStep: inout Int,
                                                 _ terms: inout (negStepSize: Float, bc2Sqrt: Float)) {
                    let lo = r * width, hi = lo + width
                    var touched = false
                    for i in lo..<hi where pg[i] != 0 { touched = true; break }
                    if !touched { return }
                    let t = Int(ps[r]) + 1
                    ps[r] = Float(t)
                    if t != cachedStep {
                        terms = Adam.biasTerms(step: t, lr: lr, beta1: b1, beta2: b2)
                        cachedStep = t
                    }
                    Adam.update(lo..<hi, p: pp, g: pg, m: pm, v: pv, c: c,
                                negStepSize: terms.negStepSize, bc2Sqrt: terms.bc2Sqrt, decoupled: decoupled)
                }
                if let tracked = grad.touchedRows {
                    // The kernel that wrote this gradient listed the rows it touched (each once):
                    // visit only those, O(touched) instead of O(table). Rows on the list whose
                    // gradient came out exactly zero are still skipped, so the result is the same
                    // as the full scan.
                    tracked.rows.withUnsafeBufferPointer { list in
                        Parallel.forRanges(list.count, grain: max(1, 16_384 / width)) { range in
                            var cachedStep = -1
                            var terms: (negStepSize: Float, bc2Sqrt: Float) = (0, 0)
                            for k in range { updateRow(Int(list[k]), &cachedStep, &terms) }
                        }
                    }
                } else {
                    Parallel.forRanges(rows, grain: max(1, 16_384 / width)) { rowRange in
                        var cachedStep = -1
                        var terms: (negStepSize: Float, bc2Sqrt: Float) = (0, 0)
                        for r in rowRange { updateRow(r, &cachedStep, &terms) }
                    }
                }
            } else {
                let terms = Adam.biasTerms(step: s.step, lr: lr, beta1: beta1, beta2: beta2)
                Parallel.forRanges(p.count, grain: 16_384) { range in
                    Adam.update(range, p: pp, g: pg, m: pm, v: pv, c: c,
                                negStepSize: terms.negStepSize, bc2Sqrt: terms.bc2Sqrt, decoupled: decoupled)
                }
            }
        }
    }

    private func state(for name: String, _ p: Tensor) -> State {
        if let s = states[name] { return s }
        let rowSteps = rowWidths[name].map { Tensor(zeros: [p.count / $0]) }
        let s = State(expAvg: Tensor(zeros: p.shape), expAvgSq: Tensor(zeros: p.shape), step: 0, rowSteps: rowSteps)
        states[name] = s
        return s
    }

    /// Number of updates applied to `name` so far (0 before its first step).
    public func stepCount(_ name: String) -> Int { states[name]?.step ?? 0 }

    // MARK: Checkpointing

    /// Keys: `<name>.exp_avg`, `<name>.exp_avg_sq` (parameter shape), `<name>.step` (scalar),
    /// and `<name>.row_step` ((rows)) for row-sparse parameters. Step counts are stored as Float,
    /// exact up to 2^24 ≈ 16.7 M steps. Parameters that were never updated have no keys.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, _) in parameters {
            guard let s = states[name] else { continue }
            out["\(name).exp_avg"] = s.expAvg.copy()
            out["\(name).exp_avg_sq"] = s.expAvgSq.copy()
            out["\(name).step"] = Tensor.scalar(Float(s.step))
            if let rs = s.rowSteps { out["\(name).row_step"] = rs.copy() }
        }
        return out
    }

    public func loadStateDict(_ dict: [String: Tensor]) throws {
        var error = OptimizerStateError(missing: [], unexpected: [], mismatched: [])
        var consumed = Set<String>()
        var loaded: [String: State] = [:]
        for (name, p) in parameters {
            let width = rowWidths[name]
            var expected: [(String, [Int])] = [("\(name).exp_avg", p.shape), ("\(name).exp_avg_sq", p.shape),
                                               ("\(name).step", [])]
            if let width { expected.append(("\(name).row_step", [p.count / width])) }
            let present = expected.filter { dict[$0.0] != nil }
            consumed.formUnion(present.map(\.0))
            if present.isEmpty { continue }  // never updated when saved: starts fresh
            var ok = true
            for (key, shape) in expected {
                guard let t = dict[key] else {
                    error.missing.append(key)
                    ok = false
                    continue
                }
                if t.shape != shape {
                    error.mismatched.append(.init(key: key, expected: shape, found: t.shape))
                    ok = false
                }
            }
            guard ok else { continue }
            let stepValue = dict["\(name).step"]!.item
            guard stepValue >= 0, stepValue == stepValue.rounded() else {
                error.invalid.append("\(name).step")
                continue
            }
            loaded[name] = State(expAvg: dict["\(name).exp_avg"]!.copy(), expAvgSq: dict["\(name).exp_avg_sq"]!.copy(),
                                 step: Int(stepValue), rowSteps: width == nil ? nil : dict["\(name).row_step"]!.copy())
        }
        error.unexpected = dict.keys.filter { !consumed.contains($0) }.sorted()
        guard error.isEmpty else { throw error }
        states = loaded
    }
}

/// AdamW: Adam with decoupled weight decay, exactly torch.optim.AdamW (`p ← p·(1 − lr·wd)` before
/// the Adam update). Defaults are torch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
///
/// - Paper: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
/// - Reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
public final class AdamW: Adam {
    public init(parameters: [(String, Tensor)], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 1e-2) {
        super.init(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }
}
