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
/// **Row-sparse deferred mode** (`setRowSparse(name, rowWidth:, mode: .deferred)`): torch's *dense*
/// Adam, computed lazily. In dense Adam a row with zero gradient still moves: its moments decay
/// (m ← β1·m, v ← β2·v) and it keeps stepping along its old momentum. Deferred mode skips such
/// rows like lazy mode, but when a row is next touched (or at `flushDeferredRows()`) it first
/// applies the k steps it missed, in closed form:
///
/// ```
/// p ← p − (m/√v) · Σ_{j=1..k} c_{t0+j} · ρ^j      c_s = lr_s·√(1 − β2^s)/(1 − β1^s),  ρ = β1/√β2
/// m ← β1^k · m,   v ← β2^k · v
/// ```
/// then the normal update with the global step's bias correction. The sums Σ c·ρ^j are kept per
/// step (`tail_sum`, truncated after ρ^j < 1e-9), so a catch-up costs O(1) per row. This equals
/// dense Adam except for two terms it drops on idle steps: the weight-decay gradient wd·p (and
/// AdamW's decoupled decay), and ε next to √v (exact for ε ≪ √v, e.g. DVT's ε = 1e-15).
/// Requires β1² < β2 (ρ < 1), as every usual setting has.
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
        let expAvg: Tensor  // same shape as the parameter
        let expAvgSq: Tensor  // same shape as the parameter
        var step: Int  // updates applied to this parameter
        var rowSteps: Tensor?  // (rows): per-row step counts (lazy) or last-updated step (deferred)
        /// Deferred mode: entry t holds Σ_{j=1..J} c_{t+j}·ρ^j over the steps seen so far (step + 1 entries).
        var tailSum: [Float] = [0]

        init(expAvg: Tensor, expAvgSq: Tensor, step: Int, rowSteps: Tensor?) {
            self.expAvg = expAvg
            self.expAvgSq = expAvgSq
            self.step = step
            self.rowSteps = rowSteps
        }
    }

    /// How a row-sparse parameter treats rows whose gradient is zero on a step.
    public enum RowSparseMode: String, Sendable, Codable, CaseIterable {
        /// Leave them alone (tiny-cuda-nn's Adam): values, moments and the row's own step count stay.
        case lazy
        /// Catch them up when next touched, as torch's dense Adam would have moved them.
        case deferred
    }

    var states: [String: State] = [:]
    /// Row width of each parameter declared row-sparse.
    public private(set) var rowWidths: [String: Int] = [:]
    /// Mode of each parameter declared row-sparse.
    public private(set) var rowModes: [String: RowSparseMode] = [:]
    /// (1 − β1^t, √(1 − β2^t)) for t = 0, 1, …, cached for the lazy mode's per-row step counts.
    private var biasCache: [(Double, Double)] = []
    private var biasCacheBetas: (Double, Double) = (.nan, .nan)

    /// - Parameters:
    ///   - parameters: named parameters (`module.namedParameters()`); frozen ones may be included,
    ///     they are skipped while `requiresGrad` is false.
    ///   - lr, betas, eps, weightDecay: torch.optim.Adam's defaults (1e-3, (0.9, 0.999), 1e-8, 0).
    public convenience init(
        parameters: [(String, Tensor)], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
        eps: Double = 1e-8, weightDecay: Double = 0
    ) {
        self.init(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: false)
    }

    init(
        parameters: [(String, Tensor)], lr: Double, betas: (Double, Double), eps: Double, weightDecay: Double,
        decoupled: Bool
    ) {
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
    /// with `rowWidth` F). Declare before the first step; if the parameter already has dense state,
    /// every row inherits its step count (lazy) or counts as updated on the last step (deferred).
    public func setRowSparse(_ name: String, rowWidth: Int, mode: RowSparseMode = .lazy) {
        guard let p = parameters.first(where: { $0.0 == name })?.1 else {
            preconditionFailure("setRowSparse: no parameter named '\(name)' (have \(parameters.map(\.0)))")
        }
        precondition(
            rowWidth > 0 && p.count % rowWidth == 0,
            "setRowSparse: '\(name)' has \(p.count) elements (shape \(p.shape)), not a multiple of row width \(rowWidth)")
        precondition(
            mode == .lazy || beta1 * beta1 < beta2,
            "setRowSparse: deferred mode needs β1² < β2 so missed momentum steps shrink, got β1 \(beta1), β2 \(beta2)")
        if let s = states[name], let old = rowModes[name], old != mode {
            preconditionFailure("setRowSparse: '\(name)' already has \(old) state after \(s.step) steps; cannot switch to \(mode)")
        }
        rowWidths[name] = rowWidth
        rowModes[name] = mode
        if let s = states[name], s.rowSteps == nil {
            s.rowSteps = Tensor(repeating: Float(s.step), shape: [p.count / rowWidth])
            if mode == .deferred { s.tailSum = [Float](repeating: 0, count: s.step + 1) }
        }
    }

    /// Momentum steps a deferred catch-up looks back: ρ^J < 1e-9 (ρ = β1/√β2).
    var deferredWindow: Int {
        let rho = beta1 / beta2.squareRoot()
        return min(10_000, max(1, Int((Foundation.log(1e-9) / Foundation.log(rho)).rounded(.up))))
    }

    /// (1 − β1^t, √(1 − β2^t)) for t = 0…upTo, computed once per β pair.
    private func ensureBiasCache(upTo t: Int) {
        if biasCacheBetas != (beta1, beta2) {
            biasCache = []
            biasCacheBetas = (beta1, beta2)
        }
        while biasCache.count <= t {
            let k = Double(biasCache.count)
            biasCache.append((1 - Foundation.pow(beta1, k), (1 - Foundation.pow(beta2, k)).squareRoot()))
        }
    }

    // MARK: Update

    /// Per-parameter weight decay replacing `weightDecay` for the named parameters (torch's
    /// per-parameter-group `weight_decay`). Empty: every parameter uses `weightDecay`.
    public var weightDecayOverrides: [String: Double] = [:]

    public func step() {
        let decoupled = decoupledWeightDecay
        for (name, p) in parameters {
            guard p.requiresGrad, let grad = p.grad else { continue }
            let wd = weightDecayOverrides[name] ?? weightDecay
            let c = AdamKernel.Coefficients(
                oneMinusBeta1: Float(1 - beta1), beta2: Float(beta2), oneMinusBeta2: Float(1 - beta2),
                l2: decoupled ? 0 : Float(wd),
                decay: decoupled ? Float(1 - lr * wd) : 1,
                eps: Float(eps))
            precondition(grad.shape == p.shape, "Adam: gradient of '\(name)' has shape \(grad.shape), parameter \(p.shape)")
            let s = state(for: name, p)
            s.step += 1
            p.noteModified()  // prepared (reordered) copies of p are stale now
            if let width = rowWidths[name], let rowSteps = s.rowSteps, rowModes[name] == .deferred {
                stepDeferred(s, p: p, grad: grad, width: width, rowSteps: rowSteps, c: c)
            } else if let width = rowWidths[name], let rowSteps = s.rowSteps {
                ensureBiasCache(upTo: s.step)
                AdamKernel.lazyRows(
                    p: p, grad: grad, m: s.expAvg, v: s.expAvgSq, rowSteps: rowSteps, width: width, c: c,
                    lr: lr, bias: biasCache, decoupled: decoupled)
            } else {
                AdamKernel.dense(
                    p: p, grad: grad, m: s.expAvg, v: s.expAvgSq, c: c,
                    terms: AdamKernel.biasTerms(step: s.step, lr: lr, beta1: beta1, beta2: beta2), decoupled: decoupled)
            }
        }
    }

    /// One deferred-mode step of a row-sparse parameter (see the type's documentation).
    private func stepDeferred(_ s: State, p: Tensor, grad: Tensor, width: Int, rowSteps: Tensor, c: AdamKernel.Coefficients) {
        let now = s.step
        AdamKernel.deferredRows(
            p: p, grad: grad, m: s.expAvg, v: s.expAvgSq, rowSteps: rowSteps, width: width, now: now, c: c,
            terms: AdamKernel.biasTerms(step: now, lr: lr, beta1: beta1, beta2: beta2), tail: s.tailSum,
            powers: decayPowers(), betas: (beta1, beta2), decoupled: decoupledWeightDecay)
        // This step's displacement coefficient, added to the sums of the rows last updated at
        // each of the previous J steps; rows updated now start a fresh sum.
        let rho = beta1 / beta2.squareRoot()
        let cNow = lr * (1 - Foundation.pow(beta2, Double(now))).squareRoot() / (1 - Foundation.pow(beta1, Double(now)))
        var w = cNow
        var t = now - 1
        let window = deferredWindow
        while t >= 1 && now - t <= window {
            w *= rho
            s.tailSum[t] += Float(w)
            t -= 1
        }
        s.tailSum.append(0)
    }

    private var powerCache: AdamKernel.DecayPowers?
    private func decayPowers() -> AdamKernel.DecayPowers {
        if let c = powerCache, c.beta1 == beta1, c.beta2 == beta2 { return c }
        let c = AdamKernel.DecayPowers(beta1: beta1, beta2: beta2)
        powerCache = c
        return c
    }

    /// Brings every deferred-mode row up to the current step, so the parameters equal what dense
    /// Adam would hold now. Call before reading a deferred table (the end of training); further
    /// steps continue correctly afterwards. A no-op for other modes and when nothing is pending.
    public func flushDeferredRows() {
        for (name, p) in parameters {
            guard rowModes[name] == .deferred, let width = rowWidths[name], let s = states[name],
                let rowSteps = s.rowSteps
            else { continue }
            AdamKernel.flushDeferredRows(
                p: p, m: s.expAvg, v: s.expAvgSq, rowSteps: rowSteps, width: width, now: s.step,
                tail: s.tailSum, powers: decayPowers(), betas: (beta1, beta2))
            p.noteModified()
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
    /// and `<name>.row_step` ((rows)) for lazy row-sparse parameters; deferred ones have
    /// `<name>.row_last_step` ((rows), the step each row was last updated at) and `<name>.tail_sum`
    /// ((step + 1), the pending momentum sums). Step counts are stored as Float, exact up to
    /// 2^24 ≈ 16.7 M steps. Parameters that were never updated have no keys.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, _) in parameters {
            guard let s = states[name] else { continue }
            out["\(name).exp_avg"] = s.expAvg.copy()
            out["\(name).exp_avg_sq"] = s.expAvgSq.copy()
            out["\(name).step"] = Tensor.scalar(Float(s.step))
            if let rs = s.rowSteps {
                if rowModes[name] == .deferred {
                    out["\(name).row_last_step"] = rs.copy()
                    out["\(name).tail_sum"] = Tensor(s.tailSum, shape: [s.tailSum.count])
                } else {
                    out["\(name).row_step"] = rs.copy()
                }
            }
        }
        return out
    }

    public func loadStateDict(_ dict: [String: Tensor]) throws {
        var error = OptimizerStateError(missing: [], unexpected: [], mismatched: [])
        var consumed = Set<String>()
        var loaded: [String: State] = [:]
        for (name, p) in parameters {
            let width = rowWidths[name]
            let deferred = rowModes[name] == .deferred
            let rowKey = deferred ? "\(name).row_last_step" : "\(name).row_step"
            var expected: [(String, [Int])] = [
                ("\(name).exp_avg", p.shape), ("\(name).exp_avg_sq", p.shape),
                ("\(name).step", []),
            ]
            if let width { expected.append((rowKey, [p.count / width])) }
            // The tail sums have one entry per step taken (+1): their length follows the step count.
            let savedStep = dict["\(name).step"].map { Int($0.item) }
            if width != nil && deferred { expected.append(("\(name).tail_sum", [(savedStep ?? 0) + 1])) }
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
            let state = State(
                expAvg: dict["\(name).exp_avg"]!.copy(), expAvgSq: dict["\(name).exp_avg_sq"]!.copy(),
                step: Int(stepValue), rowSteps: width == nil ? nil : dict[rowKey]!.copy())
            if width != nil && deferred { state.tailSum = dict["\(name).tail_sum"]!.scalars }
            loaded[name] = state
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
    public init(
        parameters: [(String, Tensor)], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
        eps: Double = 1e-8, weightDecay: Double = 1e-2
    ) {
        super.init(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }
}

/// Scales the gradients of `parameters` in place so that their joint L2 norm is at most `maxNorm`
/// (torch.nn.utils.clip_grad_norm_ with its 1e-6: factor maxNorm / (norm + 1e-6), applied only
/// when norm > maxNorm). The norm is summed in Double, parameter by parameter in order. Returns
/// the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [(String, Tensor)], maxNorm: Double) -> Double {
    var total = 0.0
    for (_, p) in parameters { if let g = p.grad { for v in g.scalars { total += Double(v) * Double(v) } } }
    let norm = total.squareRoot()
    guard norm > maxNorm else { return norm }
    let s = Float(maxNorm / (norm + 1e-6))
    for (_, p) in parameters { if let g = p.grad { g.assign(Tensor(g.scalars.map { $0 * s }, shape: g.shape)) } }
    return norm
}
