import CLapacke
import Foundation
import TensorCore
import Vision

// Pictures of feature maps, shared by every command: PCA → RGB, feature-norm heat maps, tiles
// and strips. Letters: H × W map grid, C channels, N = H·W tokens (summed over maps when a PCA is
// fitted on several).

/// Eigendecomposition of a real symmetric matrix with LAPACK's divide-and-conquer `ssyevd`.
public enum SymmetricEigen {
    /// Eigenvalues in descending order, and the matching unit eigenvectors (one array each).
    /// Each eigenvector's sign is fixed so its largest-magnitude entry is positive, which makes
    /// PCA colours reproducible across runs and machines.
    ///
    /// - Parameter matrix: n×n, row-major; only the upper triangle is read.
    public static func decompose(_ matrix: [Float], n: Int) throws -> (values: [Float], vectors: [[Float]]) {
        precondition(matrix.count == n * n, "SymmetricEigen: \(matrix.count) values for a \(n)x\(n) matrix")
        if n == 0 { return ([], []) }
        var a = matrix
        var w = [Float](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { ap in
            w.withUnsafeMutableBufferPointer { wp in
                LAPACKE_ssyevd(
                    LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")),
                    Int32(n), ap.baseAddress, Int32(n), wp.baseAddress)
            }
        }
        guard info == 0 else {
            throw VisualsError("LAPACKE_ssyevd failed on a \(n)x\(n) matrix (info \(info)\(info > 0 ? ": no convergence" : ": bad argument"))")
        }
        // ssyevd returns ascending eigenvalues; eigenvector k is column k of the row-major result.
        var values: [Float] = [], vectors: [[Float]] = []
        for k in stride(from: n - 1, through: 0, by: -1) {
            var v = (0..<n).map { a[$0 * n + k] }
            let big = v.indices.max { abs(v[$0]) < abs(v[$1]) }!
            if v[big] < 0 { v = v.map { -$0 } }
            values.append(w[k])
            vectors.append(v)
        }
        return (values, vectors)
    }
}

/// A PCA of feature vectors to a few components, with a fixed colour range per component, so a
/// basis fitted on one map (the raw features) colours others (the denoised ones) comparably.
public struct FeaturePCA {
    /// (C) mean of the fitted features.
    public let mean: [Float]
    /// k × (C): unit principal directions, largest variance first.
    public let components: [[Float]]
    /// Variance along each component.
    public let variances: [Float]
    /// Per component, the projections mapped to 0 and 255 (robust percentiles of the fit data).
    public let low: [Float]
    public let high: [Float]

    /// Fits on the tokens of one or more (H, W, C) maps (any rank; the last axis is channels).
    ///
    /// - Parameters:
    ///   - components: how many (3 for RGB).
    ///   - percentiles: the colour range of each component: projections at these percentiles of
    ///     the fit data map to 0 and 255. 1/99 ignores the handful of high-norm artifact tokens
    ///     that would otherwise squash every other token into one colour.
    public init(fitting maps: [Tensor], components k: Int = 3, percentiles: (Float, Float) = (1, 99)) throws {
        guard let c = maps.first?.shape.last, c > 0 else { throw VisualsError("PCA: no feature map to fit") }
        guard maps.allSatisfy({ $0.shape.last == c }) else {
            throw VisualsError("PCA: maps have different channel counts: \(maps.map(\.shape))")
        }
        guard k >= 1 && k <= c else { throw VisualsError("PCA: \(k) components asked of \(c)-channel features") }
        let n = maps.reduce(0) { $0 + $1.count / c }
        guard n >= 2 else { throw VisualsError("PCA: need at least 2 feature vectors, got \(n)") }
        var mu = [Double](repeating: 0, count: c)
        for m in maps { for t in 0..<(m.count / c) { for ch in 0..<c { mu[ch] += Double(m[flat: t * c + ch]) } } }
        let meanF = mu.map { Float($0 / Double(n)) }
        let centred = Tensor(zeros: [n, c])  // (N, C)
        var row = 0
        for m in maps {
            for t in 0..<(m.count / c) {
                for ch in 0..<c { centred[flat: row * c + ch] = m[flat: t * c + ch] - meanF[ch] }
                row += 1
            }
        }
        let cov = withNoGrad { Tensor.matmul(centred, centred, transposeA: true) } / Float(n - 1)  // (C, C)
        let (values, vectors) = try SymmetricEigen.decompose(cov.scalars, n: c)
        mean = meanF
        components = Array(vectors.prefix(k))
        variances = Array(values.prefix(k))
        let proj = FeaturePCA.project(centred, components: components)  // (N, k)
        var lo: [Float] = [], hi: [Float] = []
        for q in 0..<k {
            let col = (0..<n).map { proj[$0 * k + q] }.sorted()
            var a = FeaturePCA.percentile(col, percentiles.0), b = FeaturePCA.percentile(col, percentiles.1)
            if !(b > a) { a = col.first!; b = col.last! }
            if !(b > a) { b = a + 1 }  // a constant component: any range, it maps to one colour
            lo.append(a); hi.append(b)
        }
        low = lo
        high = hi
    }

    /// Fits on one map.
    public init(fitting map: Tensor, components k: Int = 3, percentiles: (Float, Float) = (1, 99)) throws {
        try self.init(fitting: [map], components: k, percentiles: percentiles)
    }

    static func project(_ centred: Tensor, components: [[Float]]) -> [Float] {
        let c = centred.shape[1], n = centred.shape[0], k = components.count
        var out = [Float](repeating: 0, count: n * k)
        for t in 0..<n {
            for q in 0..<k {
                var s: Float = 0
                for ch in 0..<c { s += centred[flat: t * c + ch] * components[q][ch] }
                out[t * k + q] = s
            }
        }
        return out
    }

    /// Linear-interpolated percentile (numpy's default) of sorted values.
    static func percentile(_ sorted: [Float], _ p: Float) -> Float {
        let pos = Double(p) / 100 * Double(sorted.count - 1)
        let i = Int(pos.rounded(.down)), f = Float(pos - Double(i))
        return i + 1 < sorted.count ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[sorted.count - 1]
    }

    /// Projections of a (H, W, C) map onto the components: (H, W, k).
    public func project(_ map: Tensor) -> Tensor {
        let c = mean.count
        precondition(map.rank == 3 && map.shape[2] == c, "PCA: map \(map.shape) does not have the fitted \(c) channels")
        let n = map.count / c
        let centred = Tensor(zeros: [n, c])  // (N, C)
        for t in 0..<n { for ch in 0..<c { centred[flat: t * c + ch] = map[flat: t * c + ch] - mean[ch] } }
        return Tensor(FeaturePCA.project(centred, components: components), shape: [map.shape[0], map.shape[1], components.count])
    }

    /// The first three components as RGB, each scaled from its fitted range to [0, 255] and clipped.
    public func image(_ map: Tensor) -> RGBImage {
        precondition(components.count >= 3, "PCA: an RGB image needs 3 components, fitted \(components.count)")
        let p = project(map)
        let h = map.shape[0], w = map.shape[1], k = components.count
        var px = [UInt8](repeating: 0, count: h * w * 3)
        for t in 0..<(h * w) {
            for q in 0..<3 {
                let v = (p[flat: t * k + q] - low[q]) / (high[q] - low[q]) * 255
                px[t * 3 + q] = UInt8(max(0, min(255, v.rounded())))
            }
        }
        return RGBImage(width: w, height: h, pixels: px)
    }
}

public enum Visuals {
    /// Per-token L2 norm of a (H, W, C) map: (H, W).
    public static func norms(_ map: Tensor) -> Tensor {
        precondition(map.rank == 3, "norms: expected (H, W, C), got \(map.shape)")
        let h = map.shape[0], w = map.shape[1], c = map.shape[2]
        let out = Tensor(zeros: [h, w])  // (H, W)
        for t in 0..<(h * w) {
            var s: Float = 0
            for ch in 0..<c { let x = map[flat: t * c + ch]; s += x * x }
            out[flat: t] = s.squareRoot()
        }
        return out
    }

    /// Anchor colours of a viridis-like ramp (dark purple → blue → teal → green → yellow):
    /// perceptually ordered and readable in grey, sampled at 0, ¼, ½, ¾, 1 of matplotlib's viridis.
    static let ramp: [(Float, Float, Float)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]

    /// The colour of t ∈ [0, 1] (clamped) on the ramp, linearly interpolated between anchors.
    public static func colormap(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let x = (t.isNaN ? 0 : max(0, min(1, t))) * Float(ramp.count - 1)
        let i = min(Int(x), ramp.count - 2), f = x - Float(i)
        let a = ramp[i], b = ramp[i + 1]
        func mix(_ u: Float, _ v: Float) -> UInt8 { UInt8((u + (v - u) * f).rounded()) }
        return (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// A (H, W) scalar map as a colour image, min/max scaled (or over `range`), in `colormap`
    /// (the viridis-like ramp unless given).
    public static func heatmap(
        _ values: Tensor, range: (Float, Float)? = nil,
        colormap: (Float) -> (UInt8, UInt8, UInt8) = Visuals.colormap
    ) -> RGBImage {
        precondition(values.rank == 2, "heatmap: expected (H, W), got \(values.shape)")
        let h = values.shape[0], w = values.shape[1]
        let v = values.scalars
        let lo = range?.0 ?? v.min() ?? 0, hi = range?.1 ?? v.max() ?? 1
        let span = hi > lo ? hi - lo : 1
        var px = [UInt8](repeating: 0, count: h * w * 3)
        for t in 0..<(h * w) {
            let (r, g, b) = colormap((v[t] - lo) / span)
            px[t * 3] = r; px[t * 3 + 1] = g; px[t * 3 + 2] = b
        }
        return RGBImage(width: w, height: h, pixels: px)
    }

    /// Feature-norm heat map of a (H, W, C) map.
    public static func normHeatmap(_ map: Tensor, range: (Float, Float)? = nil) -> RGBImage {
        heatmap(norms(map), range: range)
    }

    /// Nearest-neighbour resize (blocky on purpose: one token stays one flat square).
    public static func upsampleNearest(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width >= 1 && height >= 1, "upsampleNearest: size \(width)x\(height)")
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let sy = y * image.height / height
            for x in 0..<width {
                let sx = x * image.width / width
                for c in 0..<3 { px[(y * width + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c] }
            }
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// Tiles side by side, top-aligned, `gap` pixels of `background` between them and around
    /// shorter tiles.
    public static func hstrip(_ tiles: [RGBImage], gap: Int = 4, background: UInt8 = 255) -> RGBImage {
        guard !tiles.isEmpty else { return RGBImage(width: 1, height: 1, pixels: [background, background, background]) }
        let h = tiles.map(\.height).max()!
        let w = tiles.reduce(0) { $0 + $1.width } + gap * (tiles.count - 1)
        var px = [UInt8](repeating: background, count: w * h * 3)
        var x0 = 0
        for t in tiles {
            for y in 0..<t.height {
                let dst = (y * w + x0) * 3, src = y * t.width * 3
                for k in 0..<(t.width * 3) { px[dst + k] = t.pixels[src + k] }
            }
            x0 += t.width + gap
        }
        return RGBImage(width: w, height: h, pixels: px)
    }

    /// Display size for a grid: the smallest multiple of the grid that is at least `target`
    /// pixels on its longer side, so every token becomes an equal square.
    public static func displaySize(height h: Int, width w: Int, target: Int = 224) -> (Int, Int) {
        let k = max(1, (target + max(h, w) - 1) / max(h, w))
        return (h * k, w * k)
    }

    /// The standard comparison strip: PCA of `before` | PCA of `after` in the same basis (fitted
    /// on `before`) | heat map of the per-token norm of their difference. `before` is upsampled
    /// (nearest) to `after`'s grid when it is coarser by an integer factor.
    public static func comparisonStrip(before: Tensor, after: Tensor, target: Int = 224) throws -> RGBImage {
        precondition(
            before.rank == 3 && after.rank == 3 && before.shape[2] == after.shape[2],
            "comparisonStrip: maps \(before.shape) and \(after.shape) must be (H, W, C) with equal C")
        var b = before
        if before.shape[0] != after.shape[0] || before.shape[1] != after.shape[1] {
            let f = after.shape[0] / before.shape[0]
            guard f >= 1, before.shape[0] * f == after.shape[0], before.shape[1] * f == after.shape[1] else {
                throw VisualsError("comparisonStrip: grid \(after.shape) is not an integer multiple of \(before.shape)")
            }
            b = ShiftEnsemble.upsampleNearest(before, factor: f)
        }
        let pca = try FeaturePCA(fitting: before)
        let (dh, dw) = displaySize(height: after.shape[0], width: after.shape[1], target: target)
        let tiles = [pca.image(b), pca.image(after), normHeatmap(after - b)]
        return hstrip(tiles.map { upsampleNearest($0, width: dw, height: dh) })
    }

    /// Writes a PNG or JPEG (by extension) atomically, creating the folder.
    public static func write(_ image: RGBImage, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try image.write(to: url)
    }
}
