// Bilinear sampling of a channel-last feature map at continuous points, as torch
// `F.grid_sample(map, grid, mode='bilinear', padding_mode='zeros', align_corners=True)`.
// H, W = map height and width, C = channels, N = number of sample points.

extension Tensor {
    /// Samples `map` bilinearly at `coords`.
    ///
    /// A point (x, y) ∈ [−1, 1]² maps to pixel coordinates with align_corners=True, so −1 and 1
    /// are the centres of the first and last pixels:
    /// ```
    /// ix = (x + 1)/2 · (W − 1),  iy = (y + 1)/2 · (H − 1)
    /// out[n] = Σ over the 4 neighbours (xi, yi) of (1 − |ix − xi|)(1 − |iy − yi|) · map[yi, xi]
    /// ```
    /// Neighbours outside the map contribute zero (padding_mode='zeros'), so a point half a
    /// pixel outside gets half the border value.
    ///
    /// Gradient flows to `map` only: a weighted scatter-add of the output gradient into the
    /// four neighbours. `coords` get **no** gradient (DVT samples fixed view coordinates); a
    /// `coords` that requires grad is read as a constant.
    /// - Parameters:
    ///   - map: (H, W, C), channel-last.
    ///   - coords: (N, 2), each row (x, y) with x along W and y along H.
    /// - Returns: (N, C).
    public static func gridSample(_ map: Tensor, _ coords: Tensor) -> Tensor {
        precondition(map.rank == 3, "gridSample: map must be (H, W, C), got \(map.shape)")
        precondition(coords.rank == 2 && coords.shape[1] == 2, "gridSample: coords must be (N, 2), got \(coords.shape)")
        let h = map.shape[0], w = map.shape[1], c = map.shape[2], n = coords.shape[0]
        let out = Tensor.uninitialized([n, c])  // (N, C)
        let pm = map.ptr, pc = coords.ptr, po = out.ptr
        // Forward: points are independent, so split them across workers.
        Parallel.forRanges(n, grain: Swift.max(1, 2048 / Swift.max(c, 1))) { range in
            for i in range {
                let dst = po + i * c
                var offsets = SIMD4<Int>(repeating: 0), weights = SIMD4<Float>(repeating: 0), found = 0
                forEachNeighbour(pc[2 * i], pc[2 * i + 1], h, w) { offset, weight in
                    offsets[found] = offset
                    weights[found] = weight
                    found += 1
                }
                if found == 4 {
                    // An interior point: one pass over the row, the same sums in the same order
                    // as zero-filling it and adding the neighbours one after another.
                    let s0 = pm + offsets[0] * c, s1 = pm + offsets[1] * c
                    let s2 = pm + offsets[2] * c, s3 = pm + offsets[3] * c
                    let (w0, w1, w2, w3) = (weights[0], weights[1], weights[2], weights[3])
                    for j in 0..<c { dst[j] = (((0 + w0 * s0[j]) + w1 * s1[j]) + w2 * s2[j]) + w3 * s3[j] }
                } else {
                    dst.update(repeating: 0, count: c)
                    for k in 0..<found {
                        let src = pm + offsets[k] * c, weight = weights[k]
                        for j in 0..<c { dst[j] += weight * src[j] }
                    }
                }
            }
        }
        // The backward reads the coordinates again: hold the tensor, not just its pointer, or
        // a caller that drops its coords after the forward pass leaves us reading freed memory.
        let heldCoords = coords.detach()
        return out.record("gridSample", [map]) { g in
            let gm = map.gradBuffer(), pg = g.ptr, pc = heldCoords.ptr
            // Several points can hit the same pixel, so splitting points across threads would
            // race. Splitting the channels instead gives each worker disjoint columns of the
            // map gradient: race-free without per-thread copies of an (H, W, C) buffer.
            // Small problems (under ~64k multiply-adds) stay on one thread; otherwise at least
            // 16 channels per worker keep the inner loop vectorised.
            let channelGrain = 4 * n * c < 65536 ? c : 16
            Parallel.forRanges(c, grain: channelGrain) { cr in
                let lo = cr.lowerBound, len = cr.count
                for i in 0..<n {
                    let gi = pg + i * c + lo
                    forEachNeighbour(pc[2 * i], pc[2 * i + 1], h, w) { offset, weight in
                        let dst = gm + offset * c + lo
                        for j in 0..<len { dst[j] += weight * gi[j] }
                    }
                }
            }
        }
    }

    /// Calls `body(pixelIndex, weight)` for each in-bounds bilinear neighbour of (x, y).
    @inline(__always)
    private static func forEachNeighbour(
        _ x: Float, _ y: Float, _ h: Int, _ w: Int,
        _ body: (Int, Float) -> Void
    ) {
        let ix = (x + 1) * 0.5 * Float(w - 1)
        let iy = (y + 1) * 0.5 * Float(h - 1)
        // Farther than one pixel outside (or NaN): every neighbour is padding.
        guard ix > -1, iy > -1, ix < Float(w), iy < Float(h) else { return }
        let fx = ix.rounded(.down), fy = iy.rounded(.down)
        let x0 = Int(fx), y0 = Int(fy)
        let tx = ix - fx, ty = iy - fy
        let wx = (1 - tx, tx), wy = (1 - ty, ty)
        if y0 >= 0 {
            if x0 >= 0 { body(y0 * w + x0, wy.0 * wx.0) }
            if x0 + 1 < w { body(y0 * w + x0 + 1, wy.0 * wx.1) }
        }
        if y0 + 1 < h {
            if x0 >= 0 { body((y0 + 1) * w + x0, wy.1 * wx.0) }
            if x0 + 1 < w { body((y0 + 1) * w + x0 + 1, wy.1 * wx.1) }
        }
    }
}
