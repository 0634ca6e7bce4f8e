import CKernels
import Foundation

// Adam's element kernels: the update that NN/Optim/Adam.swift documents (torch.optim.Adam term
// for term), over a dense tensor and over the rows of a row-sparse table (lazy and deferred
// modes). Parameters and both moments are updated in place; the optimiser keeps the state and the
// step counts and calls these.

public enum AdamKernel {
    /// Scalars of one update, as Float, in the form the element loop uses them.
    public struct Coefficients: Sendable {
        var oneMinusBeta1: Float
        var beta2: Float
        var oneMinusBeta2: Float
        var l2: Float  // Adam's L2 term (0 for AdamW)
        var decay: Float  // AdamW's 1 − lr·wd (1 for Adam)
        var eps: Float

        public init(oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float, l2: Float, decay: Float, eps: Float) {
            (self.oneMinusBeta1, self.beta2, self.oneMinusBeta2, self.l2, self.decay, self.eps) = (
                oneMinusBeta1, beta2, oneMinusBeta2, l2, decay, eps
            )
        }
    }

    /// −lr/(1 − β1^t) and √(1 − β2^t), in Double like torch's Python-side arithmetic, then as Float.
    @inline(__always)
    public static func biasTerms(step: Int, lr: Double, beta1: Double, beta2: Double) -> (negStepSize: Float, bc2Sqrt: Float) {
        let t = Double(step)
        let bc1 = 1 - Foundation.pow(beta1, t)
        let bc2 = 1 - Foundation.pow(beta2, t)
        return (Float(-(lr / bc1)), Float(bc2.squareRoot()))
    }

    /// The element update over `range`. Kept as one function so dense and row-sparse paths
    /// perform the identical float operations.
    /// On AVX-512 CPUs the update runs in CKernels at 16 lanes with bit-identical results (Swift
    /// compiles for baseline x86-64: 4 lanes, and square roots and divisions dominate).
    static let vectorised = dvt_cpu_has_avx512() != 0

    @inline(__always)
    static func update(
        _ range: Range<Int>, p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>,
        m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
        c: Coefficients, negStepSize: Float, bc2Sqrt: Float, decoupled: Bool
    ) {
        if vectorised {
            let o = range.lowerBound
            dvt_adam_update_avx512(
                p + o, g + o, m + o, v + o, range.count, c.oneMinusBeta1, c.beta2, c.oneMinusBeta2,
                c.l2, c.decay, c.eps, negStepSize, bc2Sqrt, decoupled ? 1 : 0)
        } else {
            updateSwift(range, p: p, g: g, m: m, v: v, c: c, negStepSize: negStepSize, bc2Sqrt: bc2Sqrt, decoupled: decoupled)
        }
    }

    /// The update as a plain Swift loop: the fallback, and the reference the vector kernel is
    /// tested against (`denseReference`).
    @inline(__always)
    static func updateSwift(
        _ range: Range<Int>, p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>,
        m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
        c: Coefficients, negStepSize: Float, bc2Sqrt: Float, decoupled: Bool
    ) {
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

    /// Applies the idle steps t0+1…`to` that row `r` (last updated at t0) missed: the momentum
    /// displacement from the tail sum, then the moments' decay. Rows never updated have m = 0: no move.
    @inline(__always)
    static func catchUp(
        row r: Int, width: Int, to last: Int, p: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, rowSteps: UnsafeMutablePointer<Float>, tail: UnsafeBufferPointer<Float>,
        powers: DecayPowers, betas: (Double, Double)
    ) {
        let t0 = Int(rowSteps[r])
        let k = last - t0
        guard t0 > 0, k > 0 else { return }
        let n = powers.b1.count
        let f1 = k < n ? powers.b1[k] : Float(Foundation.pow(betas.0, Double(k)))
        let f2 = k < n ? powers.b2[k] : Float(Foundation.pow(betas.1, Double(k)))
        let d = tail[t0]
        for i in (r * width)..<((r + 1) * width) {
            let vi = v[i]
            // A select rather than a branch, so the row loop vectorises; p − 0 is p exactly.
            let move = d * m[i] / vi.squareRoot()
            p[i] -= vi > 0 ? move : 0
            m[i] *= f1
            v[i] *= f2
        }
    }

    /// β1^k and β2^k as Float, k = 0, 1, … until both underflow to 0 (capped at 2^16 entries;
    /// `catchUp` computes longer idle spans directly).
    public final class DecayPowers: Sendable {
        public let beta1: Double, beta2: Double
        let b1: [Float], b2: [Float]
        public init(beta1: Double, beta2: Double) {
            self.beta1 = beta1
            self.beta2 = beta2
            var a: [Float] = [], b: [Float] = []
            var k = 0
            repeat {
                a.append(Float(Foundation.pow(beta1, Double(k))))
                b.append(Float(Foundation.pow(beta2, Double(k))))
                k += 1
            } while (a.last! != 0 || b.last! != 0) && k < 1 << 16
            b1 = a
            b2 = b
        }
    }

    /// Entries of a touched-row list looked ahead by the row-sparse steps: the rows of a hash
    /// table come in random order, so each would otherwise wait for its own DRAM misses.
    static let rowPrefetchDistance = 8

    /// Prefetches row `r` of the parameter, its gradient, both moments and its step count (a
    /// row of ≤ 16 floats is one cache line when the row starts one).
    @inline(__always)
    static func prefetchRow(
        _ r: Int, width: Int, _ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>,
        _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ steps: UnsafeMutablePointer<Float>
    ) {
        let o = r * width
        dvt_prefetch(p + o); dvt_prefetch(g + o); dvt_prefetch(m + o); dvt_prefetch(v + o); dvt_prefetch(steps + r)
    }

    /// One dense step of every element.
    public static func dense(
        p: Tensor, grad: Tensor, m: Tensor, v: Tensor, c: Coefficients,
        terms: (negStepSize: Float, bc2Sqrt: Float), decoupled: Bool
    ) {
        let pp = p.ptr, pg = grad.ptr, pm = m.ptr, pv = v.ptr
        Parallel.forRanges(p.count, grain: 16_384) { range in
            update(
                range, p: pp, g: pg, m: pm, v: pv, c: c,
                negStepSize: terms.negStepSize, bc2Sqrt: terms.bc2Sqrt, decoupled: decoupled)
        }
    }

    /// `dense` on one thread through the Swift loop, whatever the CPU: the reference for tests.
    package static func denseReference(
        p: Tensor, grad: Tensor, m: Tensor, v: Tensor, c: Coefficients,
        terms: (negStepSize: Float, bc2Sqrt: Float), decoupled: Bool
    ) {
        updateSwift(
            0..<p.count, p: p.ptr, g: grad.ptr, m: m.ptr, v: v.ptr, c: c,
            negStepSize: terms.negStepSize, bc2Sqrt: terms.bc2Sqrt, decoupled: decoupled)
    }

    /// Calls `body(r, &state)` for every row `r` whose gradient is not all zero, in parallel
    /// ranges, each range starting from its own copy of `initial` (so a range can cache per-row
    /// terms). When the kernel that wrote the gradient listed the rows it touched (each once),
    /// only those are visited, O(touched) instead of O(table), prefetching ahead because a hash
    /// table's rows come in random order; listed rows whose gradient came out exactly zero are
    /// still skipped, so both paths visit the same rows.
    @inline(__always)
    static func forEachTouchedRow<State>(
        grad: Tensor, width: Int, p: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, rowSteps: UnsafeMutablePointer<Float>, initial: State,
        _ body: (_ row: Int, _ state: inout State) -> Void
    ) {
        let pg = grad.ptr
        let grain = max(1, 16_384 / width)
        @inline(__always) func visit(_ r: Int, _ state: inout State) {
            let lo = r * width
            for i in lo..<(lo + width) where pg[i] != 0 {
                body(r, &state)
                return
            }
        }
        if let tracked = grad.touchedRows {
            tracked.rows.withUnsafeBufferPointer { list in
                Parallel.forRanges(list.count, grain: grain) { range in
                    var state = initial
                    for k in range {
                        if k + rowPrefetchDistance < range.upperBound {
                            prefetchRow(Int(list[k + rowPrefetchDistance]), width: width, p, pg, m, v, rowSteps)
                        }
                        visit(Int(list[k]), &state)
                    }
                }
            }
        } else {
            Parallel.forRanges(grad.count / width, grain: grain) { range in
                var state = initial
                for r in range { visit(r, &state) }
            }
        }
    }

    /// One lazy-mode step: rows whose gradient is zero are left alone; a touched row advances its
    /// own step count in `rowSteps` and is bias-corrected with it (`bias[t]` = (1 − β1^t, √(1 − β2^t))).
    public static func lazyRows(
        p: Tensor, grad: Tensor, m: Tensor, v: Tensor, rowSteps: Tensor, width: Int,
        c: Coefficients, lr: Double, bias: [(Double, Double)], decoupled: Bool
    ) {
        let pp = p.ptr, pg = grad.ptr, pm = m.ptr, pv = v.ptr, ps = rowSteps.ptr
        bias.withUnsafeBufferPointer { bias in
            // Per-range state: the bias terms of the last step count seen (the same Double
            // arithmetic as `biasTerms`), reused while consecutive rows share a count.
            let noTerms = (step: -1, negStepSize: Float(0), bc2Sqrt: Float(0))
            forEachTouchedRow(grad: grad, width: width, p: pp, m: pm, v: pv, rowSteps: ps, initial: noTerms) { r, terms in
                let t = Int(ps[r]) + 1
                ps[r] = Float(t)
                if t != terms.step {
                    terms = (t, Float(-(lr / bias[t].0)), Float(bias[t].1))
                }
                update(
                    (r * width)..<((r + 1) * width), p: pp, g: pg, m: pm, v: pv, c: c,
                    negStepSize: terms.negStepSize, bc2Sqrt: terms.bc2Sqrt, decoupled: decoupled)
            }
        }
    }

    /// One deferred-mode step at global step `now`: a touched row first catches up the steps it
    /// missed (`catchUp`, from the tail sums), then takes the normal update; `rowSteps` holds the
    /// step each row was last updated at.
    public static func deferredRows(
        p: Tensor, grad: Tensor, m: Tensor, v: Tensor, rowSteps: Tensor, width: Int, now: Int,
        c: Coefficients, terms: (negStepSize: Float, bc2Sqrt: Float), tail: [Float],
        powers: DecayPowers, betas: (Double, Double), decoupled: Bool
    ) {
        let pp = p.ptr, pg = grad.ptr, pm = m.ptr, pv = v.ptr, ps = rowSteps.ptr
        tail.withUnsafeBufferPointer { tail in
            forEachTouchedRow(grad: grad, width: width, p: pp, m: pm, v: pv, rowSteps: ps, initial: ()) { r, _ in
                catchUp(
                    row: r, width: width, to: now - 1, p: pp, m: pm, v: pv, rowSteps: ps, tail: tail,
                    powers: powers, betas: betas)
                ps[r] = Float(now)
                update(
                    (r * width)..<((r + 1) * width), p: pp, g: pg, m: pm, v: pv, c: c,
                    negStepSize: terms.negStepSize, bc2Sqrt: terms.bc2Sqrt, decoupled: decoupled)
            }
        }
    }

    /// Brings every row last updated before `now` up to `now` (deferred mode's flush).
    public static func flushDeferredRows(
        p: Tensor, m: Tensor, v: Tensor, rowSteps: Tensor, width: Int, now: Int,
        tail: [Float], powers: DecayPowers, betas: (Double, Double)
    ) {
        let pp = p.ptr, pm = m.ptr, pv = v.ptr, ps = rowSteps.ptr
        let rows = p.count / width
        tail.withUnsafeBufferPointer { tail in
            Parallel.forRanges(rows, grain: max(1, 16_384 / width)) { range in
                for r in range where Int(ps[r]) > 0 && Int(ps[r]) < now {
                    catchUp(
                        row: r, width: width, to: now, p: pp, m: pm, v: pv, rowSteps: ps, tail: tail,
                        powers: powers, betas: betas)
                    ps[r] = Float(now)
                }
            }
        }
    }
}
