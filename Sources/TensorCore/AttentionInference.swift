// The inference path of multiHeadAttention (no gradient will be needed): per (batch, head)
// pair, queries in blocks of `queryBlock` rows, so the scores live in a (queryBlock, N) buffer
// that stays in L2 instead of an (N, N) matrix per head (7.5 MB at ViT-B/14 518², 1370 tokens,
// written by one product, read and written by softmax, read by the next). Each block is exact
// softmax attention (every query row sees all keys), so nothing is approximated; the rows are
// the same products as the unblocked path, computed in smaller calls (a few ulp apart).
//
// With bf16 on oneDNN, K and V are packed to bf16 once per head and each block's Q rows and
// probabilities once per block, and the products go straight to oneDNN's bf16 kernel (the
// generic BLAS.gemm bf16 path would repack K and V for every block).

extension Tensor {
    /// Query rows per block: 64 rows × 1370 keys × 4 bytes = 350 KB of scores.
    static let attentionQueryBlock = 64

    /// One worker's buffers for `attendBlocked`.
    final class AttentionScratch {
        let scores: UnsafeMutablePointer<Float>  // (queryBlock, N)
        let k16, v16, q16, p16: UnsafeMutablePointer<UInt16>?
        init(n: Int, d: Int, bf16: Bool) {
            let qb = Tensor.attentionQueryBlock
            scores = .allocate(capacity: Swift.max(1, qb * n))
            k16 = bf16 ? BFloat16.allocatePadded(n * d) : nil
            v16 = bf16 ? BFloat16.allocatePadded(n * d) : nil
            q16 = bf16 ? BFloat16.allocatePadded(qb * d) : nil
            p16 = bf16 ? BFloat16.allocatePadded(qb * n) : nil
        }
        deinit {
            scores.deallocate()
            k16?.deallocate(); v16?.deallocate(); q16?.deallocate(); p16?.deallocate()
        }
    }

    /// softmax(scale · Q Kᵀ) V for one head, Q, K, V (N, D) with leading dimension `ld`, the
    /// output (N, D) written with leading dimension `ldo`.
    static func attendBlocked(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
                              out o: UnsafeMutablePointer<Float>, ldo: Int, n: Int, d: Int, scale: Float,
                              precision: Precision, scratch: AttentionScratch) {
        let native = precision == .bf16 && BLAS.backend == .onednn
        if native {
            BFloat16.pack(k, rows: n, cols: d, ld: ld, into: scratch.k16!, parallel: false)
            BFloat16.pack(v, rows: n, cols: d, ld: ld, into: scratch.v16!, parallel: false)
        }
        let s = scratch.scores
        var i0 = 0
        while i0 < n {
            let rows = Swift.min(attentionQueryBlock, n - i0)
            // S = scale · Q[i0 ..< i0 + rows] Kᵀ  (rows, N)
            if native {
                BFloat16.pack(q + i0 * ld, rows: rows, cols: d, ld: ld, into: scratch.q16!, parallel: false)
                OneDNN.gemm(false, true, rows, n, d, scale, scratch.q16!, d, scratch.k16!, d, 0, s, n, bf16: true)
            } else {
                BLAS.gemm(false, true, rows, n, d, scale, q + i0 * ld, ld, k, ld, 0, s, n, split: false, precision: precision)
            }
            for i in 0..<rows { softmaxRow(s + i * n, s + i * n, n) }
            // O[i0 ..< i0 + rows] = P V  (rows, D)
            if native {
                BFloat16.pack(s, rows: rows, cols: n, ld: n, into: scratch.p16!, parallel: false)
                OneDNN.gemm(false, false, rows, d, n, 1, scratch.p16!, n, scratch.v16!, d, 0, o + i0 * ldo, ldo, bf16: true)
            } else {
                BLAS.gemm(false, false, rows, d, n, 1, s, n, v, ld, 0, o + i0 * ldo, ldo, split: false, precision: precision)
            }
            i0 += rows
        }
    }
}
