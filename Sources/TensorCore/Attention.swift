import COpenBLAS

// Fused multi-head self-attention on a packed qkv projection, in timm's layout.
// B = batch, N = tokens, C = model width, H = heads, D = C / H head width.
// qkv is (B, N, 3C) and timm reshapes it to (B, N, 3, H, D): in token row t of batch b,
// q of head h is columns [h·D, (h+1)·D), k is C + that, v is 2C + that. Every product below
// reads those strided column blocks in place through sgemm's leading dimension (3C), and the
// output is written in place with leading dimension C, so no q/k/v/o copies are made.

extension Tensor {
    /// Softmax attention of every head, `softmax(q kᵀ / √D) v`, concatenated over heads
    /// (timm's `(attn @ v).transpose(1, 2).reshape(B, N, C)`).
    ///
    /// Backward, per (batch, head), with S = scale·Q Kᵀ and P = softmax(S):
    /// ```
    /// dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
    /// dQ = scale · dS K,  dK = scale · dSᵀ Q
    /// ```
    /// The probabilities P (B, H, N, N) are kept for backward only when a gradient will be
    /// needed; otherwise queries run in blocks of 64 rows and each worker reuses one (64, N)
    /// score buffer (AttentionInference.swift), so inference never holds an (N, N) matrix.
    /// - Paper: Vaswani et al., "Attention Is All You Need", arXiv:1706.03762 (scale 1/√D).
    /// - Parameters:
    ///   - qkv: (B, N, 3C) packed projections, timm layout.
    ///   - heads: H; must divide C.
    /// - Returns: (B, N, C).
    public static func multiHeadAttention(qkv: Tensor, heads: Int) -> Tensor {
        precondition(
            qkv.rank == 3 && qkv.shape[2] % 3 == 0,
            "multiHeadAttention: qkv must be (B, N, 3C), got \(qkv.shape)")
        let b = qkv.shape[0], n = qkv.shape[1], c3 = qkv.shape[2], c = c3 / 3
        precondition(
            heads >= 1 && c % heads == 0,
            "multiHeadAttention: \(heads) heads do not divide C = \(c) (qkv \(qkv.shape))")
        let d = c / heads
        let scale = 1 / Float(d).squareRoot()
        let pairs = b * heads
        let out = Tensor.uninitialized([b, n, c])  // (B, N, C)
        let keep = GradMode.enabled && qkv.requiresGrad
        let precision = Precision.current  // forward and backward products alike
        let probs = Tensor.uninitialized(keep ? [b, heads, n, n] : [0])  // (B, H, N, N) or empty
        let pqkv = qkv.ptr, po = out.ptr, pp = probs.ptr
        if pairs == 0 || n == 0 || d == 0 {
            out.fill(0)
            return out
        }
        if !keep {
            // Inference: query blocks, no (N, N) matrix (AttentionInference.swift).
            attentionPairs(pairs) { range in
                let scratch = AttentionScratch(n: n, d: d, bf16: precision == .bf16)
                for pair in range {
                    let bi = pair / heads, h = pair % heads
                    let q = pqkv + bi * n * c3 + h * d
                    attendBlocked(
                        q: q, k: q + c, v: q + 2 * c, ld: c3, out: po + bi * n * c + h * d, ldo: c,
                        n: n, d: d, scale: scale, precision: precision, scratch: scratch)
                }
            }
            return out
        }
        attentionPairs(pairs) { range in
            for pair in range {
                let bi = pair / heads, h = pair % heads
                let q = pqkv + bi * n * c3 + h * d, k = q + c, v = q + 2 * c
                let p = pp + pair * n * n
                // S = scale · Q Kᵀ  (N, N)
                BLAS.gemm(false, true, n, n, d, scale, q, c3, k, c3, 0, p, n, split: false, precision: precision)
                for i in 0..<n { softmaxRow(p + i * n, p + i * n, n) }
                // O = P V  (N, D), written into head h's columns of the output
                BLAS.gemm(false, false, n, d, n, 1, p, n, v, c3, 0, po + bi * n * c + h * d, c, split: false, precision: precision)
            }
        }
        return out.record("multiHeadAttention", [qkv]) { g in
            let pg = g.ptr, gqkv = qkv.gradBuffer()
            let pp = probs.ptr  // reading through `probs` keeps P alive until backward
            attentionPairs(pairs) { range in
                let dp = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
                defer { dp.deallocate() }
                for pair in range {
                    let bi = pair / heads, h = pair % heads
                    let offset = bi * n * c3 + h * d
                    let q = pqkv + offset, k = q + c, v = q + 2 * c
                    let dq = gqkv + offset, dk = dq + c, dv = dq + 2 * c
                    let p = pp + pair * n * n
                    let dout = pg + bi * n * c + h * d
                    // dV += Pᵀ dO
                    BLAS.gemm(true, false, n, d, n, 1, p, n, dout, c, 1, dv, c3, split: false, precision: precision)
                    // dP = dO Vᵀ
                    BLAS.gemm(false, true, n, n, d, 1, dout, c, v, c3, 0, dp, n, split: false, precision: precision)
                    // dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place over dP
                    for i in 0..<n {
                        let pr = p + i * n, dr = dp + i * n
                        let dot = RowKernels.dot(dr, pr, n)
                        for j in 0..<n { dr[j] = pr[j] * (dr[j] - dot) }
                    }
                    // dQ += scale · dS K,  dK += scale · dSᵀ Q
                    BLAS.gemm(false, false, n, d, n, scale, dp, n, k, c3, 1, dq, c3, split: false, precision: precision)
                    BLAS.gemm(true, false, n, d, n, scale, dp, n, q, c3, 1, dk, c3, split: false, precision: precision)
                }
            }
        }
    }

    /// Runs `body` over the (batch, head) pairs. With the engine's sgemm threading (OpenBLAS
    /// single-threaded, see `BLAS.Threading`) pairs are spread over the workers and each product
    /// runs unsplit; every pair writes only its own head's columns, so the result does not depend
    /// on which worker took which pair. With `DVT_GEMM=openblas-threads` pairs run one after another and
    /// OpenBLAS threads each product (measured at (B 8, N 256, C 384, 6 heads) on 2 cores:
    /// forward+backward 41 ms spread over workers vs 59 ms).
    private static func attentionPairs(_ pairs: Int, _ body: (Range<Int>) -> Void) {
        if BLAS.threading == .engine { Parallel.forRanges(pairs, grain: 1, body) } else { body(0..<pairs) }
    }
}
