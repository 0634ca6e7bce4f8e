import Foundation

// The kernels of the shift ensemble (SRT, DVT/SRT.swift): zero-fill translations, nearest
// upsampling, average pooling, and the per-pixel mean / median of shifted token maps built
// straight from the token maps. Maps are channels-last (H, W, C), images (C, H, W).

public enum ShiftEnsemble {
    /// Translated copies of one (C, H, W) image, one per (down, right) shift: (B, C, H, W).
    public static func translatedBatch(_ image: Tensor, shifts: [(Int, Int)]) -> Tensor {
        precondition(image.rank == 3, "translatedBatch: expected (C, H, W), got \(image.shape)")
        let c = image.shape[0], h = image.shape[1], w = image.shape[2]
        let batch = Tensor(zeros: [shifts.count, c, h, w])  // (B, C, H, W)
        for (k, (i, j)) in shifts.enumerated() {
            translate(image.ptr, channels: c, height: h, width: w, down: i, right: j, into: batch.ptr + k * c * h * w)
        }
        return batch
    }

    /// Translates a (channels, H, W) plane stack: out[c, y, x] = in[c, y − down, x − right], 0
    /// where that falls outside. `out` must not alias `src`.
    static func translate(
        _ src: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int,
        down i: Int, right j: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        dst.update(repeating: 0, count: channels * h * w)
        let x0 = max(0, j), x1 = min(w, w + j)  // destination columns with a source
        guard x1 > x0 else { return }
        for c in 0..<channels {
            for y in max(0, i)..<max(max(0, i), min(h, h + i)) {
                (dst + (c * h + y) * w + x0).update(from: src + (c * h + y - i) * w + x0 - j, count: x1 - x0)
            }
        }
    }

    /// A (3, H, W) image translated by (down, right) pixels with zero fill.
    public static func translateImage(_ image: Tensor, down i: Int, right j: Int) -> Tensor {
        precondition(image.rank == 3, "translateImage: expected (C, H, W), got \(image.shape)")
        let out = Tensor(zeros: image.shape)
        translate(image.ptr, channels: image.shape[0], height: image.shape[1], width: image.shape[2], down: i, right: j, into: out.ptr)
        return out
    }

    /// A channels-last map (H, W, C) translated by (down, right) with zero fill:
    /// out(y, x) = in(y − down, x − right).
    public static func translateMap(_ map: Tensor, down i: Int, right j: Int) -> Tensor {
        precondition(map.rank == 3, "translateMap: expected (H, W, C), got \(map.shape)")
        let h = map.shape[0], w = map.shape[1], c = map.shape[2]
        let out = Tensor(zeros: map.shape)  // (H, W, C)
        let x0 = max(0, j), x1 = min(w, w + j)
        guard x1 > x0 else { return out }
        for y in max(0, i)..<max(max(0, i), min(h, h + i)) {
            (out.ptr + (y * w + x0) * c).update(from: map.ptr + ((y - i) * w + x0 - j) * c, count: (x1 - x0) * c)
        }
        return out
    }

    /// Nearest-neighbour upsampling of a token map by an integer factor (F.interpolate with
    /// scale_factor, mode "nearest"): (Gh, Gw, C) → (Gh·s, Gw·s, C).
    public static func upsampleNearest(_ map: Tensor, factor s: Int) -> Tensor {
        precondition(map.rank == 3 && s >= 1, "upsampleNearest: expected (H, W, C) and factor >= 1, got \(map.shape), \(s)")
        let gh = map.shape[0], gw = map.shape[1], c = map.shape[2]
        let out = Tensor(zeros: [gh * s, gw * s, c])  // (Gh·s, Gw·s, C)
        for y in 0..<(gh * s) {
            for x in 0..<(gw * s) {
                (out.ptr + (y * gw * s + x) * c).update(from: map.ptr + ((y / s) * gw + x / s) * c, count: c)
            }
        }
        return out
    }

    /// Average pooling of an (H, W, C) map with a square window and stride `window`
    /// (F.avg_pool2d(x, window)); a ragged edge is dropped, as avg_pool2d does.
    public static func avgPool(_ map: Tensor, window k: Int) -> Tensor {
        precondition(map.rank == 3 && k >= 1, "avgPool: expected (H, W, C) and window >= 1, got \(map.shape), \(k)")
        let h = map.shape[0] / k, w = map.shape[1] / k, c = map.shape[2], srcW = map.shape[1]
        let out = Tensor(zeros: [h, w, c])  // (H/k, W/k, C)
        let scale = 1 / Float(k * k)
        let src = map.ptr, dst = out.ptr
        Parallel.forEach(h) { a in
            for b in 0..<w {
                let o = dst + (a * w + b) * c
                for y in (a * k)..<(a * k + k) {
                    for x in (b * k)..<(b * k + k) {
                        let s = src + (y * srcW + x) * c
                        for ch in 0..<c { o[ch] += s[ch] }
                    }
                }
                for ch in 0..<c { o[ch] *= scale }
            }
        }
        return out
    }

    /// The per-pixel aggregate of the views, built straight from the token maps: (Gh·S, Gw·S, C).
    /// Equivalent to upsampling every view, translating it back and stacking, without holding N
    /// pixel maps (the median gathers one pixel's N values at a time).
    // Long on purpose: the mean and median share the per-view source-index tables built here.
    public static func pixelAggregate(_ views: [(shift: (Int, Int), features: Tensor)], stride s: Int, median: Bool) -> Tensor {
        let gh = views[0].features.shape[0], gw = views[0].features.shape[1], c = views[0].features.shape[2]
        let hp = gh * s, wp = gw * s, n = views.count
        let out = Tensor(zeros: [hp, wp, c])  // (Hp, Wp, C)
        let ptrs = views.map { UnsafePointer($0.features.ptr) }
        let di = views.map(\.shift.0), dj = views.map(\.shift.1)
        let dst = out.ptr
        // Source token row/column of every pixel row/column for every view, -1 off the grid:
        // the view's pixel (y + i) lies in token ⌊(y + i)/S⌋.
        func sourceIndex(_ p: Int, _ shift: Int, _ size: Int) -> Int {
            let q = p + shift
            return q < 0 || q >= size * s ? -1 : q / s
        }
        let rowSrc = (0..<n).map { k in (0..<hp).map { sourceIndex($0, di[k], gh) } }
        let colSrc = (0..<n).map { k in (0..<wp).map { sourceIndex($0, dj[k], gw) } }
        if !median {
            let scale = 1 / Float(n)
            Parallel.forEach(hp) { y in
                for x in 0..<wp {
                    let o = dst + (y * wp + x) * c
                    for k in 0..<n {
                        let ty = rowSrc[k][y], tx = colSrc[k][x]
                        if ty < 0 || tx < 0 { continue }
                        let f = ptrs[k] + (ty * gw + tx) * c
                        for ch in 0..<c { o[ch] += f[ch] }
                    }
                    for ch in 0..<c { o[ch] *= scale }
                }
            }
        } else {
            // Pixels whose rows map to the same source token row in every view (and likewise
            // columns) see the same N values, so the median is computed once per (row class,
            // column class) and copied: with S = 14 and dy = 3 a token's 14 rows fall into 7
            // classes, a 4x saving overall.
            func classes(_ src: [[Int]], _ count: Int) -> (classOf: [Int], representative: [Int]) {
                var index: [[Int]: Int] = [:]
                var classOf = [Int](repeating: 0, count: count), reps: [Int] = []
                for p in 0..<count {
                    let signature = src.map { $0[p] }
                    if let k = index[signature] {
                        classOf[p] = k
                    } else {
                        index[signature] = reps.count
                        classOf[p] = reps.count
                        reps.append(p)
                    }
                }
                return (classOf, reps)
            }
            let rows = classes(rowSrc, hp), cols = classes(colSrc, wp)
            let nr = rows.representative.count, nc = cols.representative.count
            let medians = UnsafeMutablePointer<Float>.allocate(capacity: nr * nc * c)  // (rows, cols, C)
            defer { medians.deallocate() }
            Parallel.forEach(nr) { a in
                let y = rows.representative[a]
                let buf = UnsafeMutablePointer<Float>.allocate(capacity: n * c)  // (C, N)
                defer { buf.deallocate() }
                for b in 0..<nc {
                    let x = cols.representative[b]
                    for k in 0..<n {
                        let ty = rowSrc[k][y], tx = colSrc[k][x]
                        if ty < 0 || tx < 0 {
                            for ch in 0..<c { buf[ch * n + k] = 0 }
                        } else {
                            let f = ptrs[k] + (ty * gw + tx) * c
                            for ch in 0..<c { buf[ch * n + k] = f[ch] }
                        }
                    }
                    let o = medians + (a * nc + b) * c
                    for ch in 0..<c { o[ch] = lowerMedian(buf + ch * n, n) }
                }
            }
            Parallel.forEach(hp) { y in
                let a = rows.classOf[y]
                for x in 0..<wp {
                    (dst + (y * wp + x) * c).update(from: medians + (a * nc + cols.classOf[x]) * c, count: c)
                }
            }
        }
        return out
    }

    /// The lower median (element of rank ⌊(n−1)/2⌋, torch.median's choice for even n) by
    /// quickselect; reorders `v`.
    public static func lowerMedian(_ values: inout [Float]) -> Float {
        values.withUnsafeMutableBufferPointer { lowerMedian($0.baseAddress!, $0.count) }
    }

    static func lowerMedian(_ v: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        let target = (n - 1) / 2
        var lo = 0, hi = n - 1
        while lo < hi {
            let pivot = v[(lo + hi) / 2]
            var a = lo, b = hi
            while a <= b {
                while v[a] < pivot { a += 1 }
                while v[b] > pivot { b -= 1 }
                if a <= b { let t = v[a]; v[a] = v[b]; v[b] = t; a += 1; b -= 1 }
            }
            if target <= b { hi = b } else if target >= a { lo = a } else { return v[target] }
        }
        return v[target]
    }

    /// Row weights of one view for pooled output rows: entry u lists the (token row, weight)
    /// pairs whose pixels fall in output row u's window after shifting back.
    ///
    /// Output row u averages pixel rows [u·k, u·k + k) of the back-translated map, i.e. rows
    /// [u·k + i, u·k + k + i) of the view's pixel map, and pixel row q there belongs to token
    /// ⌊q/S⌋. With k dividing S the window meets at most two tokens: writing u·k + i = t·S + r
    /// (0 ≤ r < S), token t gets min(k, S − r)/k and token t+1 the rest, max(0, r + k − S)/k.
    /// For k = S (the token grid) and 0 ≤ i < S that is (S − i)/S on token u and i/S on token
    /// u + 1; for −S < i < 0, |i|/S on token u − 1 and (S − |i|)/S on token u; shifts of S or more
    /// just move t. Tokens off the grid contribute zero, like the zero fill of the pixel path.
    public static func poolWeights(outputs: Int, window k: Int, stride s: Int, shift i: Int, tokens g: Int) -> [[(Int, Float)]] {
        (0..<outputs).map { u in
            let q = u * k + i
            let t = q >= 0 ? q / s : -((-q + s - 1) / s)  // floor division
            let r = q - t * s
            var pairs: [(Int, Float)] = []
            let first = min(k, s - r), second = k - first
            if t >= 0 && t < g { pairs.append((t, Float(first) / Float(k))) }
            if second > 0 && t + 1 >= 0 && t + 1 < g { pairs.append((t + 1, Float(second) / Float(k))) }
            return pairs
        }
    }

    /// The mean ensemble pooled with window `k` (k divides S), computed on the output grid:
    /// every view contributes a separable, bilinear-like mix of each token and its neighbours with
    /// the overlap weights of `poolWeights` (product of the row and column weights, e.g.
    /// (S − |i|)(S − |j|)/S² for the token itself on the token grid). Exactly the pooled pixel
    /// mean, at a fraction of the work: (Gh·S/k, Gw·S/k, C).
    public static func fastMean(_ views: [(shift: (Int, Int), features: Tensor)], stride s: Int, window k: Int) -> Tensor {
        precondition(s % k == 0, "fastMean: window \(k) must divide the stride \(s)")
        let gh = views[0].features.shape[0], gw = views[0].features.shape[1], c = views[0].features.shape[2]
        let oh = gh * s / k, ow = gw * s / k, n = views.count
        let out = Tensor(zeros: [oh, ow, c])  // (Oh, Ow, C)
        let rows = views.map { poolWeights(outputs: oh, window: k, stride: s, shift: $0.shift.0, tokens: gh) }
        let cols = views.map { poolWeights(outputs: ow, window: k, stride: s, shift: $0.shift.1, tokens: gw) }
        let ptrs = views.map { UnsafePointer($0.features.ptr) }
        let dst = out.ptr
        let scale = 1 / Float(n)
        Parallel.forEach(oh) { u in
            for v in 0..<ow {
                let o = dst + (u * ow + v) * c
                for m in 0..<n {
                    for (ty, wy) in rows[m][u] {
                        for (tx, wx) in cols[m][v] {
                            let wgt = wy * wx * scale
                            let f = ptrs[m] + (ty * gw + tx) * c
                            for ch in 0..<c { o[ch] += wgt * f[ch] }
                        }
                    }
                }
            }
        }
        return out
    }
}
