import DVT
import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

func pearson(_ a: [Float], _ b: [Float]) -> Double {
    let n = Double(a.count)
    let ma = a.reduce(0.0) { $0 + Double($1) } / n, mb = b.reduce(0.0) { $0 + Double($1) } / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for (x, y) in zip(a, b) {
        let u = Double(x) - ma, v = Double(y) - mb
        sab += u * v; saa += u * u; sbb += v * v
    }
    return sab / (saa * sbb).squareRoot()
}

@Suite struct VisualsTests {
    @Test func eigenDecompositionOfAHandMadeMatrix() throws {
        // A = Q diag(5, 2, 0.5) Qᵀ with Q a rotation about z by 30° — eigenpairs known by construction.
        let c = Float(cos(Double.pi / 6)), s = Float(sin(Double.pi / 6))
        let q: [[Float]] = [[c, s, 0], [-s, c, 0], [0, 0, 1]]  // columns of Qᵀ are the eigenvectors
        let lambda: [Float] = [5, 2, 0.5]
        var a = [Float](repeating: 0, count: 9)
        for r in 0..<3 { for col in 0..<3 { for k in 0..<3 { a[r * 3 + col] += q[k][r] * lambda[k] * q[k][col] } } }
        let (values, vectors) = try SymmetricEigen.decompose(a, n: 3)
        expectClose(values, lambda, rtol: 1e-5, atol: 1e-5, "eigenvalues, descending")
        for k in 0..<3 {
            let dot = zip(vectors[k], q[k]).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            #expect(abs(abs(dot) - 1) < 1e-5, "eigenvector \(k): |<v, q>| = \(abs(dot))")
            // Sign convention: the largest-magnitude entry is positive.
            let big = vectors[k].max { abs($0) < abs($1) }!
            #expect(big > 0)
        }
        // A·v = λ·v
        for k in 0..<3 {
            let av = (0..<3).map { r in (0..<3).reduce(Float(0)) { $0 + a[r * 3 + $1] * vectors[k][$1] } }
            expectClose(av, vectors[k].map { $0 * values[k] }, rtol: 1e-4, atol: 1e-5, "A v = λ v")
        }
    }

    @Test func pcaRecoversAnEmbedded3DSignal() throws {
        // Features = three smooth spatial signals with distinct variances, mixed into 24 channels
        // by an orthonormal basis, plus small noise. PCA must return the signals, up to sign.
        let h = 12, w = 10, c = 24
        var rng = RandomGenerator(seed: 9)
        let raw = Tensor.normal([c, c], rng: &rng)
        // Gram–Schmidt on 3 random rows → orthonormal basis (3, C).
        var basis: [[Float]] = []
        for r in 0..<3 {
            var v = (0..<c).map { raw[flat: r * c + $0] }
            for b in basis { let d = zip(v, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }; v = zip(v, b).map { $0 - d * $1 } }
            let n = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
            basis.append(v.map { $0 / n })
        }
        // Three spatial patterns, centred and made exactly uncorrelated over the grid (so the
        // principal directions are the basis vectors themselves), with standard deviations 3, 2, 1.
        var signals: [[Float]] = [
            (0..<(h * w)).map { Float(sin(Double($0 % w) * 0.6)) },
            (0..<(h * w)).map { Float(cos(Double($0 / w) * 0.5)) },
            (0..<(h * w)).map { Float($0 % w - $0 / w) },
        ]
        for k in 0..<3 {
            let m = signals[k].reduce(0, +) / Float(h * w)
            var v = signals[k].map { $0 - m }
            for b in 0..<k { let d = zip(v, signals[b]).reduce(Float(0)) { $0 + $1.0 * $1.1 }; v = zip(v, signals[b]).map { $0 - d * $1 } }
            let n = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
            signals[k] = v.map { $0 / n }
        }
        let stds: [Float] = [3, 2, 1]
        let map = Tensor(zeros: [h, w, c])
        for t in 0..<(h * w) {
            for ch in 0..<c {
                let clean = (0..<3).reduce(Float(0)) { $0 + stds[$1] * Float(h * w).squareRoot() * signals[$1][t] * basis[$1][ch] }
                map[flat: t * c + ch] = clean + 0.01 * rng.normal()
            }
        }
        let pca = try FeaturePCA(fitting: map)
        let proj = pca.project(map)
        #expect(proj.shape == [h, w, 3])
        // Component k should track signal k: the ordering follows the variances 3² > 2² > 1².
        for k in 0..<3 {
            let comp = (0..<(h * w)).map { proj[flat: $0 * 3 + k] }
            let r = pearson(comp, signals[k])
            #expect(abs(r) > 0.999, "component \(k) vs signal \(k): r = \(r)")
        }
        #expect(pca.variances[0] > pca.variances[1] && pca.variances[1] > pca.variances[2])
        let img = pca.image(map)
        #expect(img.width == w && img.height == h)
        // Robust range: roughly 1 % of tokens clip at each end, so both 0 and 255 appear.
        #expect(img.pixels.contains(0) && img.pixels.contains(255))
    }

    @Test func pcaFittedOnOneMapColoursAnotherConsistently() throws {
        let a = randn([6, 6, 8], seed: 1)
        let pca = try FeaturePCA(fitting: a)
        // The same values give the same colours, and one constant map gives one colour.
        #expect(pca.image(a) == pca.image(a.copy()))
        let img = pca.image(a * 0)
        let first = Array(img.pixels[0..<3])
        for t in 0..<36 { #expect(Array(img.pixels[(t * 3)..<(t * 3 + 3)]) == first) }
        #expect(throws: VisualsError.self) { try FeaturePCA(fitting: [Tensor]()) }
    }

    @Test func heatmapColoursAndStrips() {
        #expect(Visuals.colormap(0) == (68, 1, 84))
        #expect(Visuals.colormap(1) == (253, 231, 37))
        #expect(Visuals.colormap(2) == Visuals.colormap(1))
        let values = Tensor([0, 1, 2, 3], shape: [2, 2])
        let heat = Visuals.heatmap(values)
        #expect(Array(heat.pixels[0..<3]) == [68, 1, 84] && Array(heat.pixels[9..<12]) == [253, 231, 37])
        let norms = Visuals.norms(Tensor([3, 4, 0, 0], shape: [1, 2, 2]))
        #expect(norms.scalars == [5, 0])
        let up = Visuals.upsampleNearest(heat, width: 6, height: 4)
        #expect(up.width == 6 && up.height == 4)
        #expect(up[x: 2, y: 1, c: 0] == heat[x: 0, y: 0, c: 0] && up[x: 3, y: 3, c: 1] == heat[x: 1, y: 1, c: 1])
        let strip = Visuals.hstrip([up, heat], gap: 3)
        #expect(strip.width == 6 + 3 + 2 && strip.height == 4)
        #expect(strip[x: 7, y: 0, c: 0] == 255 && strip[x: 9, y: 3, c: 0] == 255)  // gap, and below the short tile
        #expect(strip[x: 10, y: 1, c: 2] == heat[x: 1, y: 1, c: 2])
    }

    @Test func comparisonStripWritesAPNG() throws {
        let raw = randn([4, 4, 16], seed: 3)
        let denoised = ShiftEnsemble.upsampleNearest(raw, factor: 2) * 0.5
        let strip = try Visuals.comparisonStrip(before: raw, after: denoised, target: 64)
        #expect(strip.height == 64 && strip.width == 3 * 64 + 2 * 4)
        let dir = temporaryDirectory("vis")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("sub/strip.png")
        try Visuals.write(strip, to: url)
        #expect(try RGBImage(contentsOf: url) == strip)
    }
}
