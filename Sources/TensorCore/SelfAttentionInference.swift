// A whole attention sub-layer, proj(attention(qkv(x))), at inference in bf16 with its
// activations kept in bf16 between the three steps. B = batch, N = tokens, C = width, H = heads,
// D = C / H.
//
// Composed (Tensor.linear, multiHeadAttention, Tensor.linear), every product rounds its fp32
// inputs to bf16 first: the qkv output (B·N, 3C) is written in fp32 and then Q is packed to
// bf16 block by block and K, V are rounded while they are reordered, and the attention output
// (B·N, C) is written in fp32 and packed again for proj (the Q packs were 2% of a ViT-B/14 518²
// bf16 forward's samples). Here the qkv product writes bf16 directly (oneDNN rounds its fp32
// result to nearest even, as BFloat16.pack does), the score products read Q in place from it
// (leading dimension 3C), K and V are reordered from it (a copy, no rounding), PV writes each
// head's bf16 output columns, and proj reads them. Every value that reaches a product is the
// bf16 rounding of the same fp32 value as in the composed path, and the products and softmax
// are the same calls, so the result is bit for bit the composed one (tested).

import COneDNN

extension Tensor {
    /// `linear(multiHeadAttention(qkv: linear(x, qkvWeight, qkvBias), heads), projWeight,
    /// projBias)`, x (B, N, C) → (B, N, C), with qkvWeight (3C, C) and projWeight (C, C). At
    /// inference in bf16 with prepared weights (MatMulPrepared.swift) the activations between
    /// the products stay bf16 (see the file comment); otherwise the composed ops. With
    /// `residual` h (B, N, C) the result is `residual(h, attention, scale:)`, proj's epilogue
    /// adding it (`linearResidual`).
    public static func selfAttention(
        _ x: Tensor, qkvWeight: Tensor, qkvBias: Tensor?, projWeight: Tensor, projBias: Tensor?, heads: Int,
        residual h: Tensor? = nil, scale gamma: Tensor? = nil
    ) -> Tensor {
        precondition(h != nil || gamma == nil, "selfAttention: a scale without a residual")
        func composed() -> Tensor {
            let o = multiHeadAttention(qkv: linear(x, qkvWeight, qkvBias), heads: heads)
            guard let h else { return linear(o, projWeight, projBias) }
            return linearResidual(o, projWeight, projBias, residual: h, scale: gamma)
        }
        let params = [qkvWeight, projWeight] + [qkvBias, projBias, h, gamma].compactMap { $0 }
        let graph = GradMode.enabled && (x.requiresGrad || params.contains { $0.requiresGrad })
        guard !graph, Precision.current == .bf16, x.rank == 3, qkvWeight.rank == 2, projWeight.rank == 2 else { return composed() }
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        guard heads >= 1, c % heads == 0, qkvWeight.shape == [3 * c, c], projWeight.shape == [c, c],
            b * n > 0, PreparedWeights.applies(to: qkvWeight), PreparedWeights.applies(to: projWeight)
        else { return composed() }
        if let qkvBias { precondition(qkvBias.shape == [3 * c], "selfAttention: qkv bias \(qkvBias.shape) should be [\(3 * c)]") }
        if let projBias { precondition(projBias.shape == [c], "selfAttention: proj bias \(projBias.shape) should be [\(c)]") }
        if let h { precondition(h.shape == x.shape, "selfAttention: residual \(h.shape) should be \(x.shape)") }
        if let gamma { precondition(gamma.shape == [c], "selfAttention: scale \(gamma.shape) should be [\(c)]") }
        let rows = b * n, d = c / heads
        let qkv16 = BFloat16.allocatePadded(rows * 3 * c)  // (B·N, 3C) bf16, timm's [q | k | v]
        let o16 = BFloat16.allocatePadded(rows * c)  // (B·N, C) bf16, heads side by side
        defer { qkv16.deallocate(); o16.deallocate() }
        guard
            PreparedWeights.linear(
                x.ptr, rows: rows, inF: c, outF: 3 * c, w: qkvWeight, b: qkvBias, into: qkv16,
                precision: .bf16, yBF16: true)
        else { return composed() }
        // The primitives depend on the shapes only: made (or found) once, before the workers.
        guard let plan = AttentionPlanBF16(n: n, d: d, ld: 3 * c, ldo: c, scale: 1 / Float(d).squareRoot()) else {
            return composed()
        }
        func pair(_ pair: Int, _ scratch: AttentionScratch) {
            let bi = pair / heads, h = pair % heads
            let q = UnsafePointer(qkv16 + bi * n * 3 * c + h * d)
            attendPreparedBF16(q: q, k: q + c, v: q + 2 * c, out: o16 + bi * n * c + h * d, plan: plan, scratch: scratch)
        }
        if Parallel.threads > 1 && b * heads > 1 {
            // One (batch, head) pair per iteration, taken by whichever worker is free.
            Parallel.concurrentPerform(b * heads) { pair($0, AttentionScratch(n: n, d: d, bf16: true)) }
        } else {
            let scratch = AttentionScratch(n: n, d: d, bf16: true)
            for p in 0..<(b * heads) { pair(p, scratch) }
        }
        let out = Tensor.uninitialized([b, n, c])  // (B, N, C)
        guard
            PreparedWeights.closingLinearBF16(o16, rows: rows, inF: c, w: projWeight, b: projBias, into: out, residual: h, scale: gamma)
        else { return composed() }
        return out
    }

    /// The four primitives of one head's blocked bf16 attention (full and last query blocks of
    /// the two products) and the keys their weight layouts come from; nil when the last block's
    /// primitives want other weight layouts than the full blocks' (then K and V would need a
    /// second reorder; not seen with oneDNN 2.6, which picks them by K and N only).
    struct AttentionPlanBF16 {
        let n: Int, d: Int, ld: Int, ldo: Int, queryBlock: Int
        let scoresKey: OneDNN.Key, outKey: OneDNN.Key
        let scores: OneDNN.Entry, scoresTail: OneDNN.Entry, out: OneDNN.Entry, outTail: OneDNN.Entry

        init?(n: Int, d: Int, ld: Int, ldo: Int, scale: Float) {
            let qb = Swift.min(Tensor.attentionQueryBlock, n)
            // S = scale · Q Kᵀ: A = Q rows in place (ld), B = Kᵀ (D, N).
            func sKey(_ m: Int) -> OneDNN.Key {
                OneDNN.Key(
                    transA: false, transB: false, m: m, n: n, k: d, lda: ld, ldb: 0, ldc: n,
                    alpha: scale.bitPattern, beta: Float(0).bitPattern, bf16: true, preparedWeights: true)
            }
            // O = P V: A = P (rows, N), B = V (N, D), C written as bf16.
            func oKey(_ m: Int) -> OneDNN.Key {
                OneDNN.Key(
                    transA: false, transB: false, m: m, n: d, k: n, lda: n, ldb: 0, ldc: ldo,
                    alpha: Float(1).bitPattern, beta: Float(0).bitPattern, bf16: true, preparedWeights: true,
                    dstBF16: true)
            }
            let tail = n % qb
            (self.n, self.d, self.ld, self.ldo, queryBlock) = (n, d, ld, ldo, qb)
            (scoresKey, outKey) = (sKey(qb), oKey(qb))
            scores = OneDNN.entry(scoresKey)
            out = OneDNN.entry(outKey)
            scoresTail = tail == 0 ? scores : OneDNN.entry(sKey(tail))
            outTail = tail == 0 ? out : OneDNN.entry(oKey(tail))
            guard Tensor.sameLayout(scores, scoresTail), Tensor.sameLayout(out, outTail) else { return nil }
        }
    }

    /// softmax(scale · Q Kᵀ) V for one head with bf16 Q, K, V (N, D) at leading dimension
    /// `plan.ld` and the bf16 output (N, D) at leading dimension `plan.ldo`: `attendPrepared`
    /// in bf16 without the per-block Q pack.
    static func attendPreparedBF16(
        q: UnsafePointer<UInt16>, k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>,
        out o: UnsafeMutablePointer<UInt16>, plan: AttentionPlanBF16, scratch: AttentionScratch
    ) {
        let n = plan.n, d = plan.d, ld = plan.ld, ldo = plan.ldo, qb = plan.queryBlock
        var ws = plan.scores.weights, wo = plan.out.weights
        let (kp, vp) = scratch.buffers(k: dnnl_memory_desc_get_size(&ws), v: dnnl_memory_desc_get_size(&wo))
        // Kᵀ (D, N): element (i, j) is K[j·ld + i]; V (N, D): element (i, j) is V[i·ld + j].
        OneDNN.reorder(k, k: d, n: n, strideK: 1, strideN: ld, layoutOf: plan.scoresKey, into: kp, srcBF16: true)
        OneDNN.reorder(v, k: n, n: d, strideK: ld, strideN: 1, layoutOf: plan.outKey, into: vp, srcBF16: true)
        let s = scratch.scores, p16 = scratch.p16!
        var i0 = 0
        while i0 < n {
            let rows = Swift.min(qb, n - i0)
            let full = rows == qb
            OneDNN.execute(full ? plan.scores : plan.scoresTail, q + i0 * ld, kp, nil, s)
            for i in 0..<rows { softmaxRowBF16(s + i * n, p16 + i * n, n) }
            OneDNN.execute(full ? plan.out : plan.outTail, p16, vp, nil, o + i0 * ldo)
            i0 += rows
        }
    }
}
