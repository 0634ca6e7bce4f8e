import Foundation
import TensorCore
import Vision

// Stochastic Resonance Transformer (SRT): average the features of many sub-token translations
// of the input, each mapped back to the original frame, so the position-locked part of the
// features (the artifact) is blurred out while the content part is super-resolved.
//
// Letters: C channels, P patch size, S patch stride, Gh × Gw token grid, Hp = Gh·S, Wp = Gw·S
// pixel-map size, N views, (i, j) a view's shift in pixels (down, right).

/// How the views of one SRT ensemble are combined.
public enum SRTAggregate: String, Sendable, CaseIterable, Codable {
    case mean, median
}

/// The resolution of an SRT output.
public enum SRTResolution: Sendable, Equatable {
    /// The token grid (Gh, Gw): the pixel map average-pooled over every S×S token cell (SRT's
    /// "ensemble" output, the one that replaces the raw features).
    case token
    /// scaleFactor × the token grid (Gh·f, Gw·f): average pooling with an S/f window.
    case fine(scaleFactor: Int)
    /// The pixel map itself (Gh·S, Gw·S).
    case pixel

    /// Side of the pooling window, in pixels, for stride `s`.
    func window(stride s: Int) -> Int {
        switch self {
        case .token: return s
        case .fine(let f): return s / f
        case .pixel: return 1
        }
    }
}

public struct SRTError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// SRT on top of a `VisionTransformer`.
///
/// For every integer offset (i, j) in [−dy, dy] × [−dx, dx] the normalised input is translated
/// (content moves down by i and right by j, vacated pixels 0 — torchvision's
/// `TF.affine(translate=[j, i])` on the tensor), the chosen layer's features are computed, each
/// token map is upsampled to pixels with nearest neighbour (token (a, b) covers pixels
/// [a·S, (a+1)·S) × [b·S, (b+1)·S)), translated back by (−i, −j) with zero fill, and the views are
/// aggregated per pixel:
///
/// ```
/// mean:   U(y, x) = 1/N · Σ_k F_k(⌊(y+i_k)/S⌋, ⌊(x+j_k)/S⌋)      (0 where that token is off the grid)
/// median: U(y, x) = lower median over k of the same values (torch.median's convention)
/// ```
///
/// Zero-filled values count as views: the mean divides by N, zeros included, exactly as the
/// official code's `acc / len(shifts)` does (the srt-bench of shared/reference/dvt_torch.py), so
/// the outermost ring of a map is damped; the median treats them the same way.
///
/// Weighting: by default the views are the unshifted image first and then every offset of the
/// grid, (0, 0) included again (N = (2dy+1)(2dx+1) + 1), as the official code builds its shift
/// list, so the unshifted view counts twice. `uniform` drops the extra view (N = (2dy+1)(2dx+1)).
/// The repeated view is computed once: its features are reused, not recomputed.
///
/// Fast variant (`fast: true`, mean only): pooling is linear, so the pooled mean of a view is a
/// separable, bilinear-like mix of each token and its neighbours with overlap weights (for the
/// token grid and 0 ≤ i, j < S: (S−i)(S−j)/S² on the token, i(S−j)/S² on the one below, …; see
/// `poolWeights`, which covers any shift, |i| ≥ S included). It gives the token and fine outputs
/// exactly, without building the (Hp, Wp, C) map. A median has no such form (the median of
/// pooled values is not the pooled median), so the median always takes the pixel path.
///
/// Stride S < P (DVT's overlapping patches): tokens are S pixels apart, so the pixel map has S
/// pixels per token and token (a, b) covers the S×S cell around its receptive-field centre
/// (a·S + P/2, b·S + P/2); the map starts (P − S)/2 pixels into the image. Translations only
/// care about the spacing, which is S pixels, so everything above holds with S in place of P.
///
/// - Paper: Lao et al., "Sub-token ViT Embedding via Stochastic Resonance Transformers", ICML 2024.
public struct SRT {
    public struct Options: Sendable, Equatable {
        /// Largest horizontal / vertical shift in pixels.
        public var dx = 3
        public var dy = 3
        public var aggregate: SRTAggregate = .mean
        /// Uniform weighting over the shift grid instead of counting (0, 0) twice.
        public var uniform = false
        /// Views per ViT forward.
        public var batchSize = 8
        /// Forward batches concurrently, one single-threaded forward per core (see `viewFeatures`).
        /// Off by default because it switches the engine to one thread process-wide while it runs,
        /// which other work in the same process would feel as a slowdown (never in its results:
        /// the engine's bits do not depend on the thread count). `dvt srt`, `dvt run` and
        /// `dvt bench srt` turn it on (ViT-S/14 at 224² on 2 cores: 7.7 s per image against 9.1 s
        /// with `dvt bench srt --serial-views`, two runs each).
        public var parallelViews = false
        /// 0-based block index.
        public var layer = 0
        /// Apply the final LayerNorm to the features (DVT and SRT do).
        public var norm = true
        /// Patch stride; nil = the patch size.
        public var stride: Int?
        public init() {}
    }

    /// Raw and ensembled features of one image.
    public struct Result {
        /// (Gh, Gw, C): the features of the unshifted image.
        public var raw: Tensor
        /// (H', W', C) at the requested resolution.
        public var output: Tensor
    }

    public let model: VisionTransformer
    public var options: Options

    public init(model: VisionTransformer, options: Options) throws {
        guard options.dx >= 0, options.dy >= 0 else { throw SRTError("SRT: dx and dy must be >= 0, got dx \(options.dx), dy \(options.dy)") }
        guard options.batchSize >= 1 else { throw SRTError("SRT: batch size must be >= 1, got \(options.batchSize)") }
        guard options.layer >= 0, options.layer < model.config.depth else {
            throw SRTError("SRT: layer \(options.layer) out of range 0..<\(model.config.depth) for \(model.config.name)")
        }
        let s = options.stride ?? model.config.patchSize
        guard s >= 1, s <= model.config.patchSize else {
            throw SRTError("SRT: stride \(s) must be in 1...\(model.config.patchSize) (the patch size)")
        }
        self.model = model
        self.options = options
    }

    /// Token spacing in pixels.
    public var stride: Int { options.stride ?? model.config.patchSize }

    /// The views in aggregation order, as (i, j) = (down, right) pixel shifts.
    public var shifts: [(Int, Int)] { SRT.shifts(dx: options.dx, dy: options.dy, uniform: options.uniform) }

    public static func shifts(dx: Int, dy: Int, uniform: Bool) -> [(Int, Int)] {
        var list: [(Int, Int)] = uniform ? [] : [(0, 0)]
        for i in -dy...dy { for j in -dx...dx { list.append((i, j)) } }
        return list
    }

    /// Checks that `resolution` is possible with this model's stride.
    public func validate(_ resolution: SRTResolution) throws {
        if case .fine(let f) = resolution {
            guard f >= 1, stride % f == 0 else {
                throw SRTError("SRT: scale factor \(f) must divide the token stride \(stride) (pooling window stride/scale)")
            }
        }
    }

    // MARK: Views

    /// The features of every distinct shift of one image.
    public struct Views {
        public let dx: Int, dy: Int
        /// Row-major over the shift grid: (i + dy)·(2dx + 1) + (j + dx).
        var maps: [Tensor]
        /// (Gh, Gw, C) features of the view shifted down by i and right by j.
        public subscript(down i: Int, right j: Int) -> Tensor {
            precondition(abs(i) <= dy && abs(j) <= dx, "SRT views: shift (\(i), \(j)) outside ±(\(dy), \(dx))")
            return maps[(i + dy) * (2 * dx + 1) + (j + dx)]
        }
        /// (Gh, Gw, C) features of the unshifted image.
        public var raw: Tensor { self[down: 0, right: 0] }
    }

    /// Features of every distinct shift, forwarded `batchSize` views at a time.
    ///
    /// With `parallelViews` and more than one worker thread, batches are forwarded concurrently,
    /// one single-threaded forward per core, instead of one multi-threaded forward at a time: the
    /// views are independent, so this drops the per-op fork/join of every kernel and BLAS call
    /// (which, with small per-op work and a busy machine, costs more than it parallelises).
    public func viewFeatures(_ image: Tensor) -> Views {
        precondition(image.rank == 3 && image.shape[0] == 3, "SRT input must be a normalised (3, H, W) image, got \(image.shape)")
        let h = image.shape[1], w = image.shape[2]
        let distinct = SRT.shifts(dx: options.dx, dy: options.dy, uniform: true)
        let batches = Swift.stride(from: 0, to: distinct.count, by: options.batchSize).map {
            Array(distinct[$0..<min(distinct.count, $0 + options.batchSize)])
        }
        func forward(_ chunk: [(Int, Int)]) -> [Tensor] {
            let batch = Tensor(zeros: [chunk.count, 3, h, w])  // (B, 3, H, W)
            for (k, (i, j)) in chunk.enumerated() {
                SRT.translate(image.ptr, channels: 3, height: h, width: w, down: i, right: j, into: batch.ptr + k * 3 * h * w)
            }
            let feats = model.features(batch, layers: [options.layer], norm: options.norm, stride: stride)[options.layer]!.patch  // (B, Gh, Gw, C)
            let per = feats.count / chunk.count
            let gh = feats.shape[1], gw = feats.shape[2], c = feats.shape[3]
            return (0..<chunk.count).map { k in
                let t = Tensor(zeros: [gh, gw, c])  // (Gh, Gw, C)
                t.ptr.update(from: feats.ptr + k * per, count: per)
                return t
            }
        }
        let workers = options.parallelViews ? min(Parallel.threads, batches.count) : 1
        if workers <= 1 {
            return Views(dx: options.dx, dy: options.dy, maps: batches.flatMap(forward))
        }
        // Workers take the next batch from a shared counter; every kernel inside runs inline.
        var results = [[Tensor]](repeating: [], count: batches.count)
        let lock = NSLock()
        var next = 0
        SRT.singleThreadedKernels {
            results.withUnsafeMutableBufferPointer { slots in
                DispatchQueue.concurrentPerform(iterations: workers) { _ in
                    while true {
                        lock.lock()
                        let b = next
                        next += 1
                        lock.unlock()
                        if b >= batches.count { return }
                        slots[b] = forward(batches[b])
                    }
                }
            }
        }
        return Views(dx: options.dx, dy: options.dy, maps: results.flatMap { $0 })
    }

    nonisolated(unsafe) private static var singleThreadDepth = 0
    nonisolated(unsafe) private static var savedThreads = 1
    private static let threadsLock = NSLock()

    /// Runs `body` with engine kernels and BLAS single-threaded (`Parallel.threads` = 1; the
    /// setting is process-wide, so overlapping scopes share one save/restore).
    static func singleThreadedKernels(_ body: () -> Void) {
        threadsLock.lock()
        if singleThreadDepth == 0 { savedThreads = Parallel.threads; Parallel.threads = 1 }
        singleThreadDepth += 1
        threadsLock.unlock()
        defer {
            threadsLock.lock()
            singleThreadDepth -= 1
            if singleThreadDepth == 0 { Parallel.threads = savedThreads }
            threadsLock.unlock()
        }
        body()
    }

    /// The view list in aggregation order, with repeats sharing one tensor.
    func orderedViews(_ views: Views) -> [(shift: (Int, Int), features: Tensor)] {
        precondition(views.dx == options.dx && views.dy == options.dy,
                     "SRT: views were computed for dx \(views.dx), dy \(views.dy), options say dx \(options.dx), dy \(options.dy)")
        return shifts.map { ($0, views[down: $0.0, right: $0.1]) }
    }

    // MARK: Ensembles

    /// Runs SRT on one normalised image (3, H, W).
    ///
    /// - Parameter fast: compute the mean on the output grid directly from the token maps
    ///   (`fastMean`), never building the pixel map. Mean aggregation and token/fine resolutions
    ///   only; the median has no such shortcut (a median of pooled values is not the pooled median).
    public func run(_ image: Tensor, resolution: SRTResolution = .token, fast: Bool = false) throws -> Result {
        try validate(resolution)
        if fast && options.aggregate != .mean {
            throw SRTError("SRT: the fast variant exists for mean aggregation only (a median does not commute with pooling)")
        }
        let views = viewFeatures(image)
        return Result(raw: views.raw, output: try ensemble(views, resolution: resolution, fast: fast))
    }

    /// Aggregates view features from `viewFeatures` at a resolution (the second half of `run`),
    /// so the pixel path and the fast variant can share one set of forwards.
    public func ensemble(_ views: Views, resolution: SRTResolution = .token, fast: Bool = false) throws -> Tensor {
        try validate(resolution)
        if fast && options.aggregate != .mean {
            throw SRTError("SRT: the fast variant exists for mean aggregation only (a median does not commute with pooling)")
        }
        let ordered = orderedViews(views)
        let window = resolution.window(stride: stride)
        if fast { return SRT.fastMean(ordered, stride: stride, window: window) }
        let pixel = SRT.pixelAggregate(ordered, stride: stride, aggregate: options.aggregate)
        return window == 1 ? pixel : SRT.avgPool(pixel, window: window)
    }

    // MARK: Kernels

    /// Translates a (channels, H, W) plane stack: out[c, y, x] = in[c, y − down, x − right], 0
    /// where that falls outside. `out` must not alias `src`.
    static func translate(_ src: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int,
                          down i: Int, right j: Int, into dst: UnsafeMutablePointer<Float>) {
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
    static func pixelAggregate(_ views: [(shift: (Int, Int), features: Tensor)], stride s: Int, aggregate: SRTAggregate) -> Tensor {
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
        switch aggregate {
        case .mean:
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
        case .median:
            // Pixels whose rows map to the same source token row in every view (and likewise
            // columns) see the same N values, so the median is computed once per (row class,
            // column class) and copied: with S = 14 and dy = 3 a token's 14 rows fall into 7
            // classes, a 4x saving overall.
            func classes(_ src: [[Int]], _ count: Int) -> (classOf: [Int], representative: [Int]) {
                var index: [[Int]: Int] = [:]
                var classOf = [Int](repeating: 0, count: count), reps: [Int] = []
                for p in 0..<count {
                    let signature = src.map { $0[p] }
                    if let k = index[signature] { classOf[p] = k } else {
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
    static func poolWeights(outputs: Int, window k: Int, stride s: Int, shift i: Int, tokens g: Int) -> [[(Int, Float)]] {
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
    static func fastMean(_ views: [(shift: (Int, Int), features: Tensor)], stride s: Int, window k: Int) -> Tensor {
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
