// Similarity and regression losses with hand-written backward passes (no intermediate
// tensors). Means over all elements add Float block sums in Double: the DVT losses average
// over ~10⁶ feature values.
// O = product of the dimensions before `axis`, K = size of `axis`, I = product after it.

extension Tensor {
    /// Cosine similarity along `axis`, as torch `F.cosine_similarity(a, b, dim, eps)`:
    /// ```
    /// y = Σ a·b / (max(‖a‖, eps) · max(‖b‖, eps))
    /// ∂y/∂a = b / (max(‖a‖,eps)·max(‖b‖,eps)) − y · a / ‖a‖²   (the second term only while ‖a‖ > eps)
    /// ```
    /// and symmetrically for b. Below eps the clamped norm is a constant, so its term vanishes.
    /// - Parameters:
    ///   - a, b: tensors of the same shape (no broadcasting).
    ///   - axis: the reduced axis; negative counts from the end.
    ///   - eps: norm floor; 1e-8 is torch's default.
    /// - Returns: the shape of `a` without `axis`.
    public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, axis: Int = -1, eps: Float = 1e-8) -> Tensor {
        precondition(a.shape == b.shape, "cosineSimilarity: shapes \(a.shape) and \(b.shape) differ")
        precondition(a.rank >= 1, "cosineSimilarity: needs at least one dimension, got shape \(a.shape)")
        let ax = Shape.axis(axis, rank: a.rank, op: "cosineSimilarity")
        let outer = a.shape[..<ax].reduce(1, *), k = a.shape[ax], inner = a.shape[(ax + 1)...].reduce(1, *)
        var outShape = a.shape
        outShape.remove(at: ax)
        let out = Tensor.uninitialized(outShape)  // (O, I)
        let m = outer * inner
        let keep = GradMode.enabled && (a.requiresGrad || b.requiresGrad)
        // Per output: dot, ‖a‖, ‖b‖, kept for backward.
        let stats = Tensor.uninitialized([keep ? m : 0, 3])  // (O·I, 3)
        let pa = a.ptr, pb = b.ptr, py = out.ptr, ps = stats.ptr
        Parallel.forRanges(m, grain: Swift.max(1, 4096 / Swift.max(k, 1))) { range in
            for idx in range {
                let o = idx / inner, i = idx % inner
                let base = o * k * inner + i
                var dot: Float = 0, aa: Float = 0, bb: Float = 0
                if inner == 1 {  // the usual last-axis case: contiguous, vectorised
                    let ra = pa + base, rb = pb + base
                    dot = RowKernels.dot(ra, rb, k)
                    aa = RowKernels.dot(ra, ra, k)
                    bb = RowKernels.dot(rb, rb, k)
                } else {
                    for j in 0..<k {
                        let x = pa[base + j * inner], y = pb[base + j * inner]
                        dot += x * y
                        aa += x * x
                        bb += y * y
                    }
                }
                let na = aa.squareRoot(), nb = bb.squareRoot()
                py[idx] = dot / (Swift.max(na, eps) * Swift.max(nb, eps))
                if keep {
                    ps[3 * idx] = dot
                    ps[3 * idx + 1] = na
                    ps[3 * idx + 2] = nb
                }
            }
        }
        return out.record("cosineSimilarity", [a, b]) { g in
            let pg = g.ptr, ps = stats.ptr  // reading through `stats` keeps the cache alive
            let ga = a.requiresGrad ? a.gradBufferForAdd() : nil
            let gb = b.requiresGrad ? b.gradBufferForAdd() : nil
            // Outputs own disjoint input elements, so parallel writes never collide.
            Parallel.forRanges(m, grain: Swift.max(1, 4096 / Swift.max(k, 1))) { range in
                for idx in range {
                    let o = idx / inner, i = idx % inner
                    let base = o * k * inner + i
                    let dot = ps[3 * idx], na = ps[3 * idx + 1], nb = ps[3 * idx + 2]
                    let ra = Swift.max(na, eps), rb = Swift.max(nb, eps)
                    let y = dot / (ra * rb)
                    let gy = pg[idx]
                    let cross = gy / (ra * rb)
                    // The −y·x/‖x‖² term comes from differentiating the norm, which is a
                    // constant once clamped at eps.
                    let selfA: Float = na > eps ? gy * y / (na * na) : 0
                    let selfB: Float = nb > eps ? gy * y / (nb * nb) : 0
                    // A fresh gradient buffer gets 0 + v (the bits of a zeroed buffer after +=).
                    if inner == 1 {
                        // d (+)= cross · other − selfTerm · own over one contiguous row.
                        @inline(__always) func addRow(
                            _ d: UnsafeMutablePointer<Float>, fresh: Bool, own: UnsafeMutablePointer<Float>,
                            other: UnsafeMutablePointer<Float>, selfTerm: Float
                        ) {
                            if fresh {
                                for j in 0..<k { d[j] = 0 + (cross * other[j] - selfTerm * own[j]) }
                            } else {
                                for j in 0..<k { d[j] += cross * other[j] - selfTerm * own[j] }
                            }
                        }
                        if let ga { addRow(ga.pointer + base, fresh: ga.fresh, own: pa + base, other: pb + base, selfTerm: selfA) }
                        if let gb { addRow(gb.pointer + base, fresh: gb.fresh, own: pb + base, other: pa + base, selfTerm: selfB) }
                    } else {
                        for j in 0..<k {
                            let e = base + j * inner
                            if let ga { ga.pointer[e] = (ga.fresh ? 0 : ga.pointer[e]) + (cross * pb[e] - selfA * pa[e]) }
                            if let gb { gb.pointer[e] = (gb.fresh ? 0 : gb.pointer[e]) + (cross * pa[e] - selfB * pb[e]) }
                        }
                    }
                }
            }
        }
    }

    /// Mean squared error, torch `F.mse_loss(prediction, target)` (reduction 'mean'):
    /// `mean((p − t)²)`, a scalar; both inputs get gradients (± 2(p − t)/n).
    public static func mseLoss(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        precondition(
            prediction.shape == target.shape,
            "mseLoss: prediction \(prediction.shape) and target \(target.shape) differ")
        let n = prediction.count
        let pp = prediction.ptr, pt = target.ptr
        let total = RowKernels.blockedSum(n) { RowKernels.squaredDistance(pp + $0, pt + $0, $1) }
        let out = Tensor.scalar(n == 0 ? .nan : Float(total / Double(n)))
        return out.record("mseLoss", [prediction, target]) { g in
            let s = 2 * g.ptr[0] / Float(n)
            let gp = prediction.requiresGrad ? prediction.gradBufferForAdd() : nil
            let gt = target.requiresGrad ? target.gradBufferForAdd() : nil
            Parallel.forRanges(n, grain: 1 << 15) { range in
                // A fresh buffer gets 0 + v (0 − v): the bits of a zeroed buffer after += (−=).
                if let gp, gt == nil {  // a fixed target (the losses' usual case): loops that vectorise
                    let d = gp.pointer
                    if gp.fresh {
                        for i in range { d[i] = 0 + s * (pp[i] - pt[i]) }
                    } else {
                        for i in range { d[i] += s * (pp[i] - pt[i]) }
                    }
                    return
                }
                for i in range {
                    let v = s * (pp[i] - pt[i])
                    if let gp { gp.pointer[i] = (gp.fresh ? 0 : gp.pointer[i]) + v }
                    if let gt { gt.pointer[i] = (gt.fresh ? 0 : gt.pointer[i]) - v }
                }
            }
        }
    }

    /// Mean absolute value, `mean(|x|)`, a scalar (the L1 penalty). Subgradient 0 at 0, as torch.
    public static func l1Mean(_ x: Tensor) -> Tensor {
        let n = x.count
        let px = x.ptr
        let total = RowKernels.blockedSum(n) { RowKernels.absSum(px + $0, $1) }
        let out = Tensor.scalar(n == 0 ? .nan : Float(total / Double(n)))
        return out.record("l1Mean", [x]) { g in
            let s = g.ptr[0] / Float(n)
            let (gx, fresh) = x.gradBufferForAdd()
            Parallel.forRanges(n, grain: 1 << 15) { range in
                for i in range { gx[i] = (fresh ? 0 : gx[i]) + (px[i] > 0 ? s : (px[i] < 0 ? -s : 0)) }
            }
        }
    }
}
