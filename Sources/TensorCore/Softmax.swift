import CKernels

// Softmax over the last axis, fused: the forward subtracts the row maximum (so exp never
// overflows) and the backward uses only the cached output. exp is RowKernels' vectorised
// polynomial (a few ulp from libm's expf).
// R = number of rows, C = last dimension.

extension Tensor {
    /// Softmax over the last axis:
    /// ```
    /// y_j = exp(x_j − max x) / Σ_k exp(x_k − max x)
    /// dx  = y ⊙ (dy − Σ_k dy_k · y_k)
    /// ```
    public func softmax() -> Tensor {
        precondition(rank >= 1, "softmax: needs at least one dimension, got shape \(shape)")
        let c = shape[rank - 1]
        let rows = c == 0 ? 0 : count / c
        let out = Tensor.uninitialized(shape)  // (R, C)
        let px = ptr, py = out.ptr
        Parallel.forRanges(rows, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            for r in range { Tensor.softmaxRow(px + r * c, py + r * c, c) }
        }
        let y = out.detach()
        return out.record("softmax", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr, py = y.ptr
            Parallel.forRanges(rows, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
                for r in range {
                    let yr = py + r * c, gr = pg + r * c, dx = gx + r * c
                    let dot = RowKernels.dot(gr, yr, c)
                    for j in 0..<c { dx[j] += yr[j] * (gr[j] - dot) }
                }
            }
        }
    }

    /// One numerically stable softmax row; `src` and `dst` may be the same buffer. AVX-512 C
    /// when the CPU has it (CPUKernels), else `softmaxRowSIMD8`.
    @inline(__always)
    static func softmaxRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        if CPUKernels.avx512 { dvt_softmax_row_avx512(src, dst, n); return }
        softmaxRowSIMD8(src, dst, n)
    }

    /// The Swift softmax row (8 lanes; the reference the AVX-512 kernel is tested against).
    @inline(__always)
    static func softmaxRowSIMD8(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 0 { return }
        let m = RowKernels.max(src, n)
        let s = RowKernels.expShiftedSum(src, dst, n, shift: m)
        RowKernels.scale(dst, n, by: 1 / s)
    }
}
