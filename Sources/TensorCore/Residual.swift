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
