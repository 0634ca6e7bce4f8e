// Layer normalisation with a fused forward (caching mean and rstd per row) and a fused
// backward, as in llm.c's layernorm_forward/backward.
// R = number of rows (product of all but the last dimension), C = normalised (last) dimension.

extension Tensor {
    /// Layer normalisation over the last axis (torch `F.layer_norm(x, (C,), weight, bias, eps)`):
    /// ```
    /// μ = mean(x),  σ² = mean((x − μ)²)  (biased),  rstd = 1 / √(σ² + eps)
    /// y = (x − μ) · rstd · weight + bias
    /// ```
    /// Backward, with x̂ = (x − μ)·rstd and d = dy·weight:
    /// ```
    /// dx = rstd · (d − mean(d) − x̂ · mean(d · x̂)),  dweight = Σ_rows dy · x̂,  dbias = Σ_rows dy
    /// ```
    /// - Paper: Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450.
    /// - Parameters:
    ///   - weight: (C) scale, or nil for 1.
    ///   - bias: (C) shift, or nil for 0.
    ///   - eps: added to the variance (timm ViTs use 1e-6, torch's default is 1e-5).
    public func layerNorm(weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
        precondition(rank >= 1, "layerNorm: needs at least one dimension, got shape \(shape)")
        let c = shape[rank - 1]
        if let weight { precondition(weight.shape == [c], "layerNorm: weight \(weight.shape) should be [\(c)] for input \(shape)") }
        if let bias { precondition(bias.shape == [c], "layerNorm: bias \(bias.shape) should be [\(c)] for input \(shape)") }
        let rows = c == 0 ? 0 : count / c
        let out = Tensor.uninitialized(shape)  // (R, C)
        let keep = GradMode.enabled && (requiresGrad || weight?.requiresGrad == true || bias?.requiresGrad == true)
        // Per-row statistics, kept for backward only when it will run.
        let stats = Tensor.uninitialized([keep ? rows : 0, 2])  // (R, 2): mean, rstd
        let px = ptr, py = out.ptr, ps = stats.ptr
        let pw = weight?.ptr, pb = bias?.ptr
        let invC = 1 / Float(c)
        let grain = Swift.max(1, 8192 / Swift.max(c, 1))
        Parallel.forRanges(rows, grain: grain) { range in
            for r in range {
                let x = px + r * c, y = py + r * c
                // Two passes (mean, then centred variance): one-pass E[x²] − E[x]² cancels badly
                // on ViT features with large outlier channels.
                let mean = RowKernels.sum(x, c) * invC
                let sq = RowKernels.centredSquareSum(x, c, mean: mean)
                let rstd = 1 / (sq * invC + eps).squareRoot()
                switch (pw, pb) {
                case let (w?, b?): for j in 0..<c { y[j] = (x[j] - mean) * rstd * w[j] + b[j] }
                case let (w?, nil): for j in 0..<c { y[j] = (x[j] - mean) * rstd * w[j] }
                case let (nil, b?): for j in 0..<c { y[j] = (x[j] - mean) * rstd + b[j] }
                case (nil, nil): for j in 0..<c { y[j] = (x[j] - mean) * rstd }
                }
                if keep {
                    ps[2 * r] = mean
                    ps[2 * r + 1] = rstd
                }
            }
        }
        let parents = [self] + [weight, bias].compactMap { $0 }
        return out.record("layerNorm", parents) { g in
            Tensor.layerNormBackward(x: self, weight: weight, bias: bias, stats: stats, dy: g, rows: rows, c: c)
        }
    }

    /// Fused layer-norm backward. Rows are split into a fixed number of blocks (independent of
    /// the thread count, so results are bit-reproducible); each block sums its dweight/dbias
    /// into its own partial buffer and the partials are added at the end, so no two threads
    /// write the same parameter gradient.
    private static func layerNormBackward(
        x: Tensor, weight: Tensor?, bias: Tensor?, stats: Tensor,
        dy: Tensor, rows: Int, c: Int
    ) {
        let px = x.ptr, pg = dy.ptr, ps = stats.ptr
        let pw = weight?.ptr
        let gx = x.requiresGrad ? x.gradBuffer() : nil
        let needW = weight?.requiresGrad == true, needB = bias?.requiresGrad == true
        // 16 blocks: enough to keep 2-8 cores busy; partials cost 16·2C floats.
        let blocks = Swift.min(rows, 16)
        let partialW = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, needW ? blocks * c : 0))
        let partialB = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, needB ? blocks * c : 0))
        defer { partialW.deallocate(); partialB.deallocate() }
        if needW { partialW.initialize(repeating: 0, count: blocks * c) }
        if needB { partialB.initialize(repeating: 0, count: blocks * c) }
        let invC = 1 / Float(c)
        let rowsPerBlock = blocks == 0 ? 0 : (rows + blocks - 1) / blocks
        // Each block is rowsPerBlock·C elements; let forRanges decide how many threads that merits.
        let grain = Swift.max(1, 16384 / Swift.max(1, rowsPerBlock * c))
        Parallel.forRanges(blocks, grain: grain) { blockRange in
            for blk in blockRange {
                let dw = partialW + blk * c, db = partialB + blk * c
                // With ceil-sized blocks the last ones can be empty (rows 40 → 16 blocks of 3).
                let lo = Swift.min(rows, blk * rowsPerBlock), hi = Swift.min(rows, (blk + 1) * rowsPerBlock)
                for r in lo..<hi {
                    let xr = px + r * c, gr = pg + r * c
                    let mean = ps[2 * r], rstd = ps[2 * r + 1]
                    if needW { for j in 0..<c { dw[j] += gr[j] * (xr[j] - mean) * rstd } }
                    if needB { for j in 0..<c { db[j] += gr[j] } }
                    guard let gx else { continue }
                    // mean(d) and mean(d · x̂), with d = dy · weight
                    var (dMean, dxhatMean) = RowKernels.layerNormGradSums(gr, pw, xr, c, mean: mean)
                    dMean *= invC
                    dxhatMean *= invC * rstd
                    let gxr = gx + r * c
                    if let pw {
                        for j in 0..<c { gxr[j] += rstd * (gr[j] * pw[j] - dMean - (xr[j] - mean) * rstd * dxhatMean) }
                    } else {
                        for j in 0..<c { gxr[j] += rstd * (gr[j] - dMean - (xr[j] - mean) * rstd * dxhatMean) }
                    }
                }
            }
        }
        if needW, let weight {
            let gw = weight.gradBuffer()
            for blk in 0..<blocks { let p = partialW + blk * c; for j in 0..<c { gw[j] += p[j] } }
        }
        if needB, let bias {
            let gb = bias.gradBuffer()
            for blk in 0..<blocks { let p = partialB + blk * c; for j in 0..<c { gb[j] += p[j] } }
        }
    }
}
