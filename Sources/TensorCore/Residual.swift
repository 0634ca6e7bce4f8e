// The residual update of a pre-norm transformer block, `x + a·γ` (timm's
// `x + ls(attn(norm(x)))`, with `ls` the per-channel layer scale γ, or `x + a` without it).
// Composed, that is two passes over (rows, C) activations and a temporary (a·γ, then the add);
// fused at inference it is one pass that reads x and a and writes the result. The arithmetic is
// the composed one: a·γ rounded to fp32, then x + that rounded (Swift does not contract the two
// into an FMA), so the result is bit for bit the composed ops' (tested).

extension Tensor {
    /// `x + a * gamma` (gamma (C) over the last axis of a) or `x + a` when gamma is nil; x and
    /// a of one shape (..., C). Fused into one pass when no gradient will be recorded,
    /// otherwise the composed, differentiable ops.
    public static func residual(_ x: Tensor, _ a: Tensor, scale gamma: Tensor?) -> Tensor {
        precondition(x.shape == a.shape, "residual: x \(x.shape) and a \(a.shape) differ")
        let c = x.rank == 0 ? 1 : x.shape[x.rank - 1]
        if let gamma { precondition(gamma.shape == [c], "residual: scale \(gamma.shape) should be [\(c)] for \(x.shape)") }
        let graph = GradMode.enabled && (x.requiresGrad || a.requiresGrad || gamma?.requiresGrad == true)
        if graph || c == 0 {
            guard let gamma else { return x + a }
            return x + a * gamma
        }
        let out = Tensor.uninitialized(x.shape)
        let px = x.ptr, pa = a.ptr, po = out.ptr
        let rows = x.count / c
        if let gamma {
            let pg = gamma.ptr
            Parallel.forRanges(rows, grain: Swift.max(1, (1 << 15) / c)) { range in
                for r in range {
                    let o = r * c
                    for j in 0..<c { po[o + j] = px[o + j] + pa[o + j] * pg[j] }
                }
            }
        } else {
            Parallel.forRanges(x.count, grain: 1 << 15) { range in
                for i in range { po[i] = px[i] + pa[i] }
            }
        }
        return out
    }
}

extension Tensor {
    /// `residual(h, linear(x, w, b), scale: gamma)`: at inference with prepared weights the
    /// bias, the layer scale and the residual sum run in the product's epilogue (oneDNN binary
    /// post-ops, the same fp32 roundings as the separate passes: bit for bit, tested), so the
    /// product's output is never written and read back and the residual pass disappears.
    /// Otherwise the composed ops.
    public static func linearResidual(_ x: Tensor, _ w: Tensor, _ b: Tensor?, residual h: Tensor, scale gamma: Tensor?) -> Tensor {
        func composed() -> Tensor { residual(h, linear(x, w, b), scale: gamma) }
        let params = [w, h] + [b, gamma].compactMap { $0 }
        let graph = GradMode.enabled && (x.requiresGrad || params.contains { $0.requiresGrad })
        guard !graph, w.rank == 2, x.rank >= 1, x.shape[x.rank - 1] == w.shape[1], PreparedWeights.applies(to: w) else {
            return composed()
        }
        let outF = w.shape[0], inF = w.shape[1], rows = x.count / max(inF, 1)
        precondition(
            h.shape == Array(x.shape.dropLast()) + [outF], "linearResidual: residual \(h.shape) should be \(Array(x.shape.dropLast()) + [outF])")
        if let b { precondition(b.shape == [outF], "linearResidual: bias \(b.shape) should be [\(outF)]") }
        if let gamma { precondition(gamma.shape == [outF], "linearResidual: scale \(gamma.shape) should be [\(outF)]") }
        if rows == 0 { return composed() }
        let out = Tensor.uninitialized(h.shape)
        guard
            PreparedWeights.linear(
                x.ptr, rows: rows, inF: inF, outF: outF, w: w, b: b, into: out.ptr, precision: Precision.current,
                residual: h.ptr, scale: gamma.map { UnsafePointer($0.ptr) })
        else { return composed() }
        return out
    }
}
