// The inference path of multiHeadAttention (no gradient will be needed): per (batch, head)
// pair, queries in blocks of `queryBlock` rows, so the scores live in a (queryBlock, N) buffer
// that stays in L2 instead of an (N, N) matrix per head (7.5 MB at ViT-B/14 518², 1370 tokens,
// written by one product, read and written by softmax, read by the next). Each block is exact
// softmax attention (every query row sees all keys), so nothing is approximated; the rows are
// the same products as the unblocked path, computed in smaller calls (a few ulp apart).
//
// On oneDNN (both precisions) K and V of a head are reordered once, straight from the strided
// fp32 qkv, into the blocked layouts the two products' primitives prefer (rounding to bf16 on
// the way in bf16), so the per-block calls (22 per head at 1370 tokens) no longer copy B into
// its blocked form each time, and in bf16 each block's Q rows are packed once and softmax
// writes the bf16 probabilities directly (`softmaxRowBF16`), instead of fp32 then a pack. Same
// arithmetic as the generic path, which takes its bf16 probabilities from the same kernel
// (tested against it bit for bit, and against the unblocked path).

import CKernels
import COneDNN
import Foundation

extension Tensor {
    /// Query rows per block: 64 rows × 1370 keys × 4 bytes = 350 KB of scores. `DVT_ATTENTION_BLOCK`
    /// overrides it for tuning (docs/speed.md: 128 and 256 were within the noise of 64).
    static let attentionQueryBlock: Int = {
        if let s = ProcessInfo.processInfo.environment["DVT_ATTENTION_BLOCK"], let v = Int(s), v > 0 { return v }
        return 64
    }()

    /// One worker's buffers for `attendBlocked`.
    final class AttentionScratch {
        let scores: UnsafeMutablePointer<Float>  // (queryBlock, N)
        let q16, p16: UnsafeMutablePointer<UInt16>?
        /// K and V of the current head in the products' weight layouts (oneDNN), grown on demand.
        var kPrepared: UnsafeMutableRawPointer?, vPrepared: UnsafeMutableRawPointer?
        var kBytes = 0, vBytes = 0
        init(n: Int, d: Int, bf16: Bool) {
            let qb = Tensor.attentionQueryBlock
            scores = .allocate(capacity: Swift.max(1, qb * n))
            q16 = bf16 ? BFloat16.allocatePadded(qb * d) : nil
            p16 = bf16 ? BFloat16.allocatePadded(qb * n) : nil
        }
        func buffers(k: Int, v: Int) -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
            if kBytes < k { kPrepared?.deallocate(); kPrepared = .allocate(byteCount: k, alignment: 64); kBytes = k }
            if vBytes < v { vPrepared?.deallocate(); vPrepared = .allocate(byteCount: v, alignment: 64); vBytes = v }
            return (kPrepared!, vPrepared!)
        }
        deinit {
            scores.deallocate()
            q16?.deallocate(); p16?.deallocate()
            kPrepared?.deallocate(); vPrepared?.deallocate()
        }
    }

    /// softmax(scale · Q Kᵀ) V for one head, Q, K, V (N, D) with leading dimension `ld`, the
    /// output (N, D) written with leading dimension `ldo`. `prepared: false` forces the generic
    /// per-block products (the reference the tests hold the prepared path to).
    static func attendBlocked(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        out o: UnsafeMutablePointer<Float>, ldo: Int, n: Int, d: Int, scale: Float,
        precision: Precision, scratch: AttentionScratch, prepared: Bool = true
    ) {
        if prepared && BLAS.backend == .onednn,
            attendPrepared(
                q: q, k: k, v: v, ld: ld, out: o, ldo: ldo, n: n, d: d, scale: scale,
                bf16: precision == .bf16, scratch: scratch)
        {
            return
        }
        let s = scratch.scores
        var i0 = 0
        while i0 < n {
            let rows = Swift.min(attentionQueryBlock, n - i0)
            // S = scale · Q[i0 ..< i0 + rows] Kᵀ  (rows, N)
            BLAS.gemm(false, true, rows, n, d, scale, q + i0 * ld, ld, k, ld, 0, s, n, split: false, precision: precision)
            if precision == .bf16, let p16 = scratch.p16 {
                // The probabilities the prepared path multiplies (bf16 from softmaxRowBF16),
                // widened back to fp32 so that the product's own bf16 rounding keeps them.
                for i in 0..<rows {
                    softmaxRowBF16(s + i * n, p16 + i * n, n)
                    for j in 0..<n { s[i * n + j] = BFloat16.float(p16[i * n + j]) }
                }
            } else {
                for i in 0..<rows { softmaxRow(s + i * n, s + i * n, n) }
            }
            // O[i0 ..< i0 + rows] = P V  (rows, D)
            BLAS.gemm(false, false, rows, d, n, 1, s, n, v, ld, 0, o + i0 * ldo, ldo, split: false, precision: precision)
            i0 += rows
        }
    }

    /// `attendBlocked` on oneDNN with K and V reordered once per head (see the file comment);
    /// false (nothing written) if the last, shorter block's primitives wanted other layouts
    /// than the full blocks' (not seen with oneDNN 2.6, which picks them by K and N only).
    static func attendPrepared(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        out o: UnsafeMutablePointer<Float>, ldo: Int, n: Int, d: Int, scale: Float,
        bf16: Bool, scratch: AttentionScratch
    ) -> Bool {
        let qb = Swift.min(attentionQueryBlock, n)
        // S = scale · Q Kᵀ: A = Q rows (packed bf16 with ld D, or fp32 in place), B = Kᵀ (D, N).
        func scoresKey(_ m: Int) -> OneDNN.Key {
            OneDNN.Key(
                transA: false, transB: false, m: m, n: n, k: d, lda: bf16 ? d : ld, ldb: 0, ldc: n,
                alpha: scale.bitPattern, beta: Float(0).bitPattern, bf16: bf16, preparedWeights: true)
        }
        // O = P V: A = P (rows, N), B = V (N, D).
        func outKey(_ m: Int) -> OneDNN.Key {
            OneDNN.Key(
                transA: false, transB: false, m: m, n: d, k: n, lda: n, ldb: 0, ldc: ldo,
                alpha: Float(1).bitPattern, beta: Float(0).bitPattern, bf16: bf16, preparedWeights: true)
        }
        let eS = OneDNN.entry(scoresKey(qb)), eO = OneDNN.entry(outKey(qb))
        let tail = n % qb
        let tS = tail == 0 ? eS : OneDNN.entry(scoresKey(tail)), tO = tail == 0 ? eO : OneDNN.entry(outKey(tail))
        guard sameLayout(eS, tS), sameLayout(eO, tO) else { return false }
        let (kp, vp) = scratch.buffers(k: dnnl_memory_desc_get_size(&eS.weights), v: dnnl_memory_desc_get_size(&eO.weights))
        // Kᵀ (D, N): element (i, j) is K[j·ld + i]; V (N, D): element (i, j) is V[i·ld + j].
        OneDNN.reorder(k, k: d, n: n, strideK: 1, strideN: ld, layoutOf: scoresKey(qb), into: kp)
        OneDNN.reorder(v, k: n, n: d, strideK: ld, strideN: 1, layoutOf: outKey(qb), into: vp)
        let s = scratch.scores
        var i0 = 0
        while i0 < n {
            let rows = Swift.min(qb, n - i0)
            let full = rows == qb
            if bf16 {
                BFloat16.pack(q + i0 * ld, rows: rows, cols: d, ld: ld, into: scratch.q16!, parallel: false)
                OneDNN.execute(full ? eS : tS, scratch.q16!, kp, nil, s)
                let p16 = scratch.p16!
                for i in 0..<rows { softmaxRowBF16(s + i * n, p16 + i * n, n) }
                OneDNN.execute(full ? eO : tO, p16, vp, nil, o + i0 * ldo)
            } else {
                OneDNN.execute(full ? eS : tS, q + i0 * ld, kp, nil, s)
                for i in 0..<rows { softmaxRow(s + i * n, s + i * n, n) }
                OneDNN.execute(full ? eO : tO, s, vp, nil, o + i0 * ldo)
            }
            i0 += rows
        }
        return true
    }

    static func sameLayout(_ a: OneDNN.Entry, _ b: OneDNN.Entry) -> Bool {
        a === b || dnnl_memory_desc_equal(&a.weights, &b.weights) != 0
    }

    /// bf16(softmax(row)) into `dst`, `row` left holding scratch values: with AVX512_BF16 the
    /// fast kernel (within one bf16 ulp of the exact softmax), else the AVX-512 kernel or the
    /// fp32 softmax row and a pack (those two give the same bits).
    static func softmaxRowBF16(_ row: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, _ n: Int) {
        if CPUKernels.avx512BF16 { dvt_softmax_row_bf16_fast_avx512(row, dst, n); return }
        if CPUKernels.avx512 { dvt_softmax_row_bf16_avx512(row, dst, n); return }
        softmaxRow(row, row, n)
        BFloat16.pack(row, rows: 1, cols: n, ld: n, into: dst, parallel: false)
    }
}
