import Foundation
import TensorCore
import Vision

// DVT's per-image panels (Jiawei-Yang/Denoising-ViT at 82704df,
// dvt/utils/visualization/visualization_tools.py): k-means clusters (`get_cluster_map`, lines
// 114-123: torch_kmeans KMeans with CosineSimilarity, 5 clusters in
// `visualize_offline_denoised_samples`, lines 157 and 166, coloured with matplotlib's "rainbow"),
// the centre-patch similarity (`get_similarity_map`, lines 79-111: cosine to token (H//2, W//2),
// min-max scaled per map, the centre itself painted red, "turbo") and feature-norm maps
// (`get_scale_map`, lines 64-76: per-token L2 norm, min-max scaled per map, "inferno").
// Letters: H × W grid, N = H·W tokens, C channels, k clusters.

/// Seeded k-means with cosine similarity (spherical k-means): tokens and centroids are unit
/// vectors, each token joins the centroid of highest cosine, each centroid is the normalised
/// mean of its tokens. DVT's torch_kmeans draws its initial centroids without a seed; here k-means++
/// seeding draws them from `RandomGenerator(seed:)`, so the raw and denoised maps get the same k and
/// the same seed and every run the same picture.
public struct SphericalKMeans {
    /// Cluster of every token, numbered by decreasing cluster size (so colours follow size, and
    /// raw and denoised panels colour their largest regions alike).
    public let labels: [Int]
    /// k × (C) unit centroids, in label order.
    public let centroids: [[Float]]

    public init(map: Tensor, k: Int, seed: UInt64, iterations: Int = 50) throws {
        let c = map.shape.last ?? 0, n = c > 0 ? map.count / c : 0
        guard c > 0, k >= 1, n >= k else { throw VisualsError("k-means: \(k) clusters asked of \(n) tokens of shape \(map.shape)") }
        let x = ClusterMaps.unitTokens(map).scalars  // (N·C)
        func dot(_ t: Int, _ v: [Float]) -> Float { var s: Float = 0; for ch in 0..<c { s += x[t * c + ch] * v[ch] }; return s }
        func row(_ t: Int) -> [Float] { Array(x[(t * c)..<(t * c + c)]) }
        // k-means++ on the cosine distance 1 − cos.
        var rng = RandomGenerator(seed: seed)
        var centres = [row(Int(rng.next() % UInt64(n)))]
        var dist = (0..<n).map { max(0, 1 - dot($0, centres[0])) }
        while centres.count < k {
            let total = dist.reduce(0, +)
            var pick = 0
            if total > 0 {
                var r = Float(Double(rng.next() >> 11) / Double(1 << 53)) * total
                for t in 0..<n { r -= dist[t]; if r <= 0 { pick = t; break }; pick = t }
            } else {
                pick = Int(rng.next() % UInt64(n))
            }
            centres.append(row(pick))
            for t in 0..<n { dist[t] = min(dist[t], max(0, 1 - dot(t, centres.last!))) }
        }
        var assign = [Int](repeating: -1, count: n)
        for _ in 0..<iterations {
            var changed = false
            for t in 0..<n {
                var best = 0, bestCos = -Float.infinity
                for (q, v) in centres.enumerated() { let s = dot(t, v); if s > bestCos { bestCos = s; best = q } }
                if assign[t] != best { assign[t] = best; changed = true }
            }
            if !changed { break }
            for q in 0..<k {
                var sum = [Float](repeating: 0, count: c)
                var members = 0
                for t in 0..<n where assign[t] == q { members += 1; for ch in 0..<c { sum[ch] += x[t * c + ch] } }
                let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if members > 0 && norm > 0 { centres[q] = sum.map { $0 / norm } }  // an empty cluster keeps its centre
            }
        }
        let sizes = (0..<k).map { q in assign.filter { $0 == q }.count }
        let order = (0..<k).sorted { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }
        var rank = [Int](repeating: 0, count: k)
        for (r, q) in order.enumerated() { rank[q] = r }
        labels = assign.map { rank[$0] }
        centroids = order.map { centres[$0] }
    }
}

public enum ClusterMaps {
    /// Cosine similarity of every token to the centre token (H/2, W/2), as DVT's
    /// `get_similarity_map`: (H, W) values in [−1, 1].
    public static func centreSimilarity(_ map: Tensor) -> Tensor {
        precondition(map.rank == 3, "centreSimilarity: expected (H, W, C), got \(map.shape)")
        let h = map.shape[0], w = map.shape[1]
        return similarity(map, to: (h / 2) * w + w / 2)
    }

    /// Cosine similarity of every token to token `index` (row-major): (H, W).
    public static func similarity(_ map: Tensor, to index: Int) -> Tensor {
        let h = map.shape[0], w = map.shape[1], c = map.shape[2]
        let v = map.scalars
        func norm(_ t: Int) -> Float { var s: Float = 0; for ch in 0..<c { s += v[t * c + ch] * v[t * c + ch] }; return s.squareRoot() }
        let qn = norm(index)
        let out = Tensor(zeros: [h, w])  // (H, W)
        for t in 0..<(h * w) {
            var s: Float = 0
            for ch in 0..<c { s += v[t * c + ch] * v[index * c + ch] }
            let d = norm(t) * qn
            out[flat: t] = d > 0 ? s / d : 0
        }
        return out
    }

    /// (N, C) with every token of a (…, C) map scaled to unit length (a zero token stays zero).
    public static func unitTokens(_ map: Tensor) -> Tensor {
        let c = map.shape.last!, n = map.count / c
        var v = map.scalars
        for t in 0..<n {
            var s: Float = 0
            for ch in 0..<c { s += v[t * c + ch] * v[t * c + ch] }
            let inv: Float = s > 0 ? 1 / s.squareRoot() : 0
            for ch in 0..<c { v[t * c + ch] *= inv }
        }
        return Tensor(v, shape: [n, c])
    }

    /// DVT's similarity picture: min-max scaled per map, turbo colours, the centre token red.
    public static func centreSimilarityImage(_ map: Tensor) -> RGBImage {
        let sim = centreSimilarity(map)
        var img = Visuals.heatmap(sim, colormap: Colormap.turbo)
        let h = map.shape[0], w = map.shape[1], centre = (h / 2) * w + w / 2
        img.pixels[centre * 3] = 255; img.pixels[centre * 3 + 1] = 0; img.pixels[centre * 3 + 2] = 0
        return img
    }

    /// A label map as colours: label q of k gets matplotlib's "rainbow" at q / (k − 1).
    public static func clusterImage(labels: [Int], k: Int, height: Int, width: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: height * width * 3)
        for (t, q) in labels.enumerated() {
            let (r, g, b) = Colormap.rainbow(k > 1 ? Float(q) / Float(k - 1) : 0)
            px[t * 3] = r; px[t * 3 + 1] = g; px[t * 3 + 2] = b
        }
        return RGBImage(width: width, height: height, pixels: px)
    }
}

/// The colour maps of DVT's panels, t ∈ [0, 1] (clamped) to RGB.
public enum Colormap {
    /// Google's Turbo by its published degree-5 polynomial fit (the viewer's JavaScript uses the
    /// same coefficients).
    public static func turbo(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let x = Double(t.isNaN ? 0 : max(0, min(1, t)))
        let r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))))
        let g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))))
        let b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))))
        func c(_ v: Double) -> UInt8 { UInt8((255 * max(0, min(1, v))).rounded()) }
        return (c(r), c(g), c(b))
    }

    /// matplotlib's "rainbow" (`_rainbow_data`: r = |2t − 0.5|, g = sin πt, b = cos πt/2, clipped).
    public static func rainbow(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let x = Double(t.isNaN ? 0 : max(0, min(1, t)))
        let r = abs(2 * x - 0.5), g = sin(x * .pi), b = cos(x * .pi / 2)
        func c(_ v: Double) -> UInt8 { UInt8((255 * max(0, min(1, v))).rounded()) }
        return (c(r), c(g), c(b))
    }

    /// Anchors of matplotlib's "inferno" at 0, ⅛, …, 1, linearly interpolated.
    static let infernoAnchors: [(Float, Float, Float)] = [
        (0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106),
        (186, 54, 85), (227, 89, 51), (249, 140, 10), (249, 201, 50), (252, 255, 164),
    ]

    public static func inferno(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let a = infernoAnchors
        let x = (t.isNaN ? 0 : max(0, min(1, t))) * Float(a.count - 1)
        let i = min(Int(x), a.count - 2), f = x - Float(i)
        func mix(_ u: Float, _ v: Float) -> UInt8 { UInt8((u + (v - u) * f).rounded()) }
        return (mix(a[i].0, a[i + 1].0), mix(a[i].1, a[i + 1].1), mix(a[i].2, a[i + 1].2))
    }
}
