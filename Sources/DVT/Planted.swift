import Foundation
import TensorCore

/// Synthetic "ViT features" with known ground truth, built the way DVT's noise model describes
/// them (the recipe of scripts/reference/planted.py, with our own seeded generator):
///
/// ```
/// raw(view, i, j) = F(global coords of patch (i, j)) + G(i, j) + R(view, i, j) + noise
/// ```
/// F is a clean field over the image (soft regions plus smooth sinusoids), G an artifact map on
/// each view's own patch grid (the same for every view), R a sparse, content-dependent,
/// high-norm residual (on the 2 flattest tokens of every view). Views are random resized crops
/// with flips, the last view is the whole image.
///
/// Letters: V views (+1 whole image), H = W = grid, C channels.
public struct PlantedData {
    /// (V+1, H, W, C)
    public var raw: Tensor
    /// (V+1, H, W, 2) as (x, y) in [0, 1]; the last view is the whole image.
    public var coords: Tensor
    /// (H, W, C): F on the whole-image grid.
    public var cleanFull: Tensor
    /// (H, W, C): G, zero-mean per channel.
    public var artifact: Tensor

    public struct Options: Sendable {
        public var grid = 16
        public var dim = 64
        public var views = 96
        public var artifactScale: Float = 0.6
        public var residualScale: Float = 2.0
        public var noise: Float = 0.05
        /// When set, G and the residual direction are those that `generate(seed: artifactSeed)`
        /// draws (scaled to that case's own field), so every case made with the same
        /// `artifactSeed` carries the same artifact: many images seen through one "ViT", which
        /// is what stage 2 needs to learn from. F, the views and the noise still come from `seed`.
        public var artifactSeed: UInt64?
        /// Planted segmentation (PlantedSegmentation.swift): each region of F takes one of this
        /// many classes, with class embeddings shared by every case; nil = the usual planted F.
        public var segmentationClasses: Int?
        /// Seed of the shared class embeddings.
        public var classDictionarySeed: UInt64 = 0
        public init() {}
    }

    /// The tensors under the names of the shared planted layout.
    public var namedTensors: [String: Tensor] {
        ["raw": raw, "coords": coords, "clean_full": cleanFull, "artifact": artifact]
    }

    public static let layoutDescription =
        "raw (V+1,H,W,C); coords (V+1,H,W,2) as (x,y) in [0,1], last view = whole image; clean_full (H,W,C) = F at the whole-image grid; artifact (H,W,C) = G (zero-mean per channel)"

    /// F's parameters: the field is evaluated at any point of the image.
    struct Field {
        let c: Int, k = 7, nSmooth = 6
        var centers: [Double] = [], regionEmbed: [Double] = [], freqs: [Double] = [], phases: [Double] = [], smoothEmbed: [Double] = []

        /// F at one point: softmax-like region weights (temperature 0.002) plus sinusoids.
        func eval(_ u: Double, _ v: Double, into out: inout [Float], at offset: Int) {
            var d2 = [Double](repeating: 0, count: k)
            for r in 0..<k {
                let du = u - centers[2 * r], dv = v - centers[2 * r + 1]
                d2[r] = du * du + dv * dv
            }
            let m = d2.min()!
            var w = d2.map { Foundation.exp(-($0 - m) / 0.002) }
            let ws = w.reduce(0, +)
            w = w.map { $0 / ws }
            let s = (0..<nSmooth).map { Foundation.sin(u * freqs[2 * $0] + v * freqs[2 * $0 + 1] + phases[$0]) }
            for ch in 0..<c {
                var acc = 0.0
                for r in 0..<k { acc += w[r] * regionEmbed[r * c + ch] }
                for q in 0..<nSmooth { acc += s[q] * smoothEmbed[q * c + ch] }
                out[offset + ch] = Float(acc)
            }
        }

        /// F on the g×g grid (x = `full`[j], y = `full`[i]): (H, W, C).
        func grid(_ full: [Double]) -> Tensor {
            let g = full.count
            var values = [Float](repeating: 0, count: g * g * c)
            for i in 0..<g { for j in 0..<g { eval(full[j], full[i], into: &values, at: (i * g + j) * c) } }
            return Tensor(values, shape: [g, g, c])
        }
    }

    /// What one seed draws before its views: F, F on the whole-image grid, G and the residual vector.
    struct Parts {
        var field: Field
        var cleanFull: Tensor  // (H, W, C)
        var artifact: Tensor  // (H, W, C)
        var hot: [Double]  // (C)
        var fscale: Double  // mean token norm of cleanFull
    }

    static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
        n == 1 ? [a] : (0..<n).map { a + (b - a) * Double($0) / Double(n - 1) }
    }

    // Long on purpose: as `generate`, the order of the random draws is the contract.
    static func drawParts(_ rng: inout RandomGenerator, _ o: Options) -> Parts {
        let g = o.grid, c = o.dim
        func normals(_ n: Int, _ scale: Double) -> [Double] { (0..<n).map { _ in Double(rng.normal()) * scale } }
        var field = Field(c: c)
        field.centers = (0..<(2 * field.k)).map { _ in 0.05 + 0.9 * rng.uniformDouble() }  // (k, 2)
        field.regionEmbed = normals(field.k * c, 1.5)  // (k, C)
        field.freqs = normals(field.nSmooth * 2, 3.0)  // (6, 2)
        field.phases = (0..<field.nSmooth).map { _ in 2 * Double.pi * rng.uniformDouble() }  // (6)
        field.smoothEmbed = normals(field.nSmooth * c, 0.4)  // (6, C)

        // Whole-image field and its mean token norm, the scale everything else is tied to.
        let full = linspace(0, 1, g)
        let cleanFull = field.grid(full)  // (H, W, C)
        var fscale = 0.0
        for t in 0..<(g * g) {
            var s = 0.0
            for ch in 0..<c { let x = Double(cleanFull[flat: t * c + ch]); s += x * x }
            fscale += s.squareRoot()
        }
        fscale /= Double(g * g)
        // G: stripes, a checkerboard, a diagonal wave and a low-frequency bump, plus 3 hot spots.
        let nb = 5
        let mix = normals(nb * c, 1.0)
        var art = [Double](repeating: 0, count: g * g * c)
        for i in 0..<g {
            for j in 0..<g {
                let basis = [
                    Foundation.cos(Double.pi * Double(i) / 2), Foundation.cos(Double.pi * Double(j) / 2),
                    Foundation.cos(Double.pi * Double(i + j) / 3), Double((i + j) % 2) * 2 - 1,
                    Foundation.cos(2 * Double.pi * Double(i) / Double(g)) * Foundation.cos(2 * Double.pi * Double(j) / Double(g)),
                ]
                for ch in 0..<c {
                    var acc = 0.0
                    for q in 0..<nb { acc += basis[q] * mix[q * c + ch] }
                    art[(i * g + j) * c + ch] = acc
                }
            }
        }
        for _ in 0..<3 {
            let a = rng.randint(g), b = rng.randint(g)
            let hot = normals(c, 3.0)
            for ch in 0..<c { art[(a * g + b) * c + ch] += hot[ch] }
        }
        for ch in 0..<c {
            var m = 0.0
            for t in 0..<(g * g) { m += art[t * c + ch] }
            m /= Double(g * g)
            for t in 0..<(g * g) { art[t * c + ch] -= m }
        }
        var artNorm = 0.0
        for t in 0..<(g * g) {
            var s = 0.0
            for ch in 0..<c { s += art[t * c + ch] * art[t * c + ch] }
            artNorm += s.squareRoot()
        }
        artNorm /= Double(g * g)
        let artScale = Double(o.artifactScale) * fscale / artNorm
        let artifact = Tensor(art.map { Float($0 * artScale) }, shape: [g, g, c])  // (H, W, C)

        var hot = normals(c, 1.0)
        let hn = hot.map { $0 * $0 }.reduce(0, +).squareRoot()
        hot = hot.map { $0 / hn * Double(o.residualScale) * fscale }

        return Parts(field: field, cleanFull: cleanFull, artifact: artifact, hot: hot, fscale: fscale)
    }

    /// Generates a planted case; the same seed and options always give the same tensors.
    // Long on purpose: the draws are in one function so their order, which fixes every seed's
    // tensors, is visible in one place.
    public static func generate(seed: UInt64, options o: Options = Options()) -> PlantedData {
        var rng = RandomGenerator(seed: seed)
        let g = o.grid, c = o.dim
        // This seed's own G is drawn even when it is replaced below, so the views and noise that
        // follow come from the same random stream as without `artifactSeed`.
        var parts = drawParts(&rng, o)
        applyClasses(&parts, seed: seed, options: o)
        if let a = o.artifactSeed, a != seed {
            var other = RandomGenerator(seed: a)
            let shared = drawParts(&other, o)
            parts.artifact = shared.artifact
            parts.hot = shared.hot
        }
        let (field, cleanFull, artifact, hot, fscale) = (parts.field, parts.cleanFull, parts.artifact, parts.hot, parts.fscale)

        let nv = o.views + 1
        var raw = [Float](repeating: 0, count: nv * g * g * c)  // (V+1, H, W, C)
        var coords = [Float](repeating: 0, count: nv * g * g * 2)  // (V+1, H, W, 2)
        let noiseStd = Double(o.noise) * fscale / Double(c).squareRoot()
        var f = [Float](repeating: 0, count: g * g * c)  // (H, W, C): F at this view's grid
        for vi in 0..<nv {
            var (y0, x0, hh, ww, flip) = (0.0, 0.0, 1.0, 1.0, false)
            if vi < o.views {
                for _ in 0..<100 {
                    let area = 0.1 + 0.4 * rng.uniformDouble()
                    let logr = Foundation.log(3.0 / 4) + (Foundation.log(4.0 / 3) - Foundation.log(3.0 / 4)) * rng.uniformDouble()
                    let ar = Foundation.exp(logr)
                    ww = (area * ar).squareRoot()
                    hh = (area / ar).squareRoot()
                    if ww <= 1 && hh <= 1 { break }
                }
                y0 = (1 - hh) * rng.uniformDouble()
                x0 = (1 - ww) * rng.uniformDouble()
                flip = rng.uniformDouble() < 0.5
            }
            let ys = linspace(y0, y0 + hh, g)
            var xs = linspace(x0, x0 + ww, g)
            if flip { xs = xs.map { x0 + (x0 + ww) - $0 } }  // mirror within the crop box
            let cv = vi * g * g * 2
            for i in 0..<g {
                for j in 0..<g {
                    coords[cv + (i * g + j) * 2] = Float(xs[j])
                    coords[cv + (i * g + j) * 2 + 1] = Float(ys[i])
                    field.eval(xs[j], ys[i], into: &f, at: (i * g + j) * c)
                }
            }
            // Residual: the 2 tokens whose features change least towards their 4 neighbours.
            var variation = [Double](repeating: 0, count: g * g)
            for i in 0..<g {
                for j in 0..<g {
                    var s = 0.0
                    for (di, dj) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                        let ni = min(max(i + di, 0), g - 1), nj = min(max(j + dj, 0), g - 1)
                        for ch in 0..<c {
                            let d = Double(f[(ni * g + nj) * c + ch] - f[(i * g + j) * c + ch])
                            s += d * d
                        }
                    }
                    variation[i * g + j] = s
                }
            }
            let flattest = Set(variation.indices.sorted { (variation[$0], $0) < (variation[$1], $1) }.prefix(2))
            let rv = vi * g * g * c
            for t in 0..<(g * g) {
                for ch in 0..<c {
                    var v = Double(f[t * c + ch]) + Double(artifact[flat: t * c + ch])
                    if flattest.contains(t) { v += hot[ch] }
                    v += Double(rng.normal()) * noiseStd
                    raw[rv + t * c + ch] = Float(v)
                }
            }
        }
        return PlantedData(
            raw: Tensor(raw, shape: [nv, g, g, c]), coords: Tensor(coords, shape: [nv, g, g, 2]),
            cleanFull: cleanFull, artifact: artifact)
    }
}
