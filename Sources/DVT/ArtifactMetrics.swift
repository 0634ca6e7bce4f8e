import Foundation
import TensorCore

// Artifact metrics behind `dvt metrics`, one implementation for every method (raw, SRT, DVT) so
// their numbers sit in one table. Letters: M maps, H × W grid, P = H·W positions, C channels,
// n = M·P samples.

public enum ArtifactMetrics {
    static func checkSameGrid(_ maps: [Tensor], _ what: String) throws -> (Int, Int, Int) {
        guard let first = maps.first else { throw ArtifactMetricsError("\(what): no feature maps") }
        guard first.rank == 3 else { throw ArtifactMetricsError("\(what): maps must be (H, W, C), got \(first.shape)") }
        if let bad = maps.firstIndex(where: { $0.shape != first.shape }) {
            throw ArtifactMetricsError("\(what): map \(bad) has shape \(maps[bad].shape), map 0 has \(first.shape); all maps must share one grid")
        }
        return (first.shape[0], first.shape[1], first.shape[2])
    }

    /// Share of the feature variance explained by patch position:
    ///
    /// ```
    /// μ(p, c) = 1/M Σ_m x_m(p, c)           per-position mean over maps
    /// μ(c)    = 1/P Σ_p μ(p, c)              grand mean
    /// ratio   = Σ_c 1/P Σ_p (μ(p, c) − μ(c))²  /  Σ_c 1/(MP) Σ_{m,p} (x_m(p, c) − μ(c))²
    /// ```
    ///
    /// 1 when every map is the same function of position, 0 when the per-position mean is flat
    /// (features carry no position signal on average). Content that happens to be spatially
    /// biased over a small set also counts as "position", so compare methods on the same images;
    /// with M maps of position-free noise the ratio is about 1/M.
    public static func positionVarianceRatio(_ maps: [Tensor]) throws -> Float {
        let (h, w, c) = try checkSameGrid(maps, "position-variance ratio")
        let p = h * w, m = Double(maps.count)
        var mu = [Double](repeating: 0, count: p * c)
        for x in maps { let b = x.scalars; for i in 0..<(p * c) { mu[i] += Double(b[i]) } }
        for i in 0..<(p * c) { mu[i] /= m }
        var grand = [Double](repeating: 0, count: c)
        for pos in 0..<p { for ch in 0..<c { grand[ch] += mu[pos * c + ch] } }
        for ch in 0..<c { grand[ch] /= Double(p) }
        var between = 0.0, total = 0.0
        for pos in 0..<p { for ch in 0..<c { let d = mu[pos * c + ch] - grand[ch]; between += d * d } }
        for x in maps {
            let b = x.scalars
            for pos in 0..<p { for ch in 0..<c { let d = Double(b[pos * c + ch]) - grand[ch]; total += d * d } }
        }
        between /= Double(p)
        total /= m * Double(p)
        return total > 0 ? Float(between / total) : 0
    }

    // MARK: Information between features and position

    /// Equal-frequency bin of every sample for `bins` bins, ties kept in one bin: a value's bin is
    /// ⌊rank of its first occurrence · bins / n⌋. Keeping ties together matters: splitting a
    /// run of equal values by index order would invent dependence on whatever the order is.
    struct Ranks {
        /// Rank of each sample's first tied occurrence in sorted order.
        var firstRank: [Int]
        var n: Int
        init(_ values: [Float]) {
            n = values.count
            let order = values.indices.sorted { values[$0] < values[$1] }
            firstRank = [Int](repeating: 0, count: n)
            var start = 0
            for r in 0..<n {
                if r > 0 && values[order[r]] != values[order[r - 1]] { start = r }
                firstRank[order[r]] = start
            }
        }
        func bins(_ b: Int) -> [Int32] { firstRank.map { Int32($0 * b / n) } }
    }

    /// Characteristic-matrix bound B(n) = n^0.6 of MIC (Reshef et al. 2011), at least 4 (a 2×2 grid).
    static func gridBound(_ n: Int) -> Int { max(4, Int(pow(Double(n), 0.6))) }

    /// Mutual information (nats) of two binnings, from their joint histogram.
    static func mutualInformation(_ a: [Int32], _ na: Int, _ b: [Int32], _ nb: Int, scratch: inout [Int32]) -> Double {
        let n = a.count
        if scratch.count < na * nb { scratch = [Int32](repeating: 0, count: na * nb) }
        for i in 0..<(na * nb) { scratch[i] = 0 }
        var ca = [Int32](repeating: 0, count: na), cb = [Int32](repeating: 0, count: nb)
        for i in 0..<n {
            scratch[Int(a[i]) * nb + Int(b[i])] += 1
            ca[Int(a[i])] += 1; cb[Int(b[i])] += 1
        }
        var mi = 0.0
        let dn = Double(n)
        for u in 0..<na where ca[u] > 0 {
            for v in 0..<nb {
                let c = scratch[u * nb + v]
                if c == 0 { continue }
                let pc = Double(c) / dn
                mi += pc * log(Double(c) * dn / (Double(ca[u]) * Double(cb[v])))
            }
        }
        return max(0, mi)
    }

    /// An equipartition estimate of the maximal information coefficient between x and y:
    ///
    /// ```
    /// MIC_eq(x, y) = max over nx, ny ≥ 2 with nx·ny ≤ B(n) of  I(X_nx; Y_ny) / log min(nx, ny)
    /// ```
    ///
    /// where X_nx, Y_ny are x and y cut into nx and ny equal-frequency bins. MIC (Reshef et al.,
    /// Science 2011; used by DVT to show features depend on position) takes the same maximum but
    /// also optimises where the x cuts fall for every grid; fixing them at the quantiles is the
    /// "equipartition" member of that family, so this is a lower bound of MIC with the same
    /// normalisation, the same B(n) = n^0.6 and the same range: 0 for independent variables (up
    /// to the small positive bias of any plug-in MI), 1 for a noiseless monotone relation. It
    /// avoids MIC's dynamic programme and needs no third-party code; with a position axis that is
    /// already uniform (every position appears M times) quantile cuts are natural cuts anyway.
    /// Like MIC under the same grid bound, it sees a position pattern only as finely as its x
    /// bins: a token-level checkerboard over P ≫ B(n)/2 positions is mostly averaged away (the
    /// position-variance ratio has no such limit).
    public static func equipartitionMIC(_ x: [Float], _ y: [Float]) -> Float {
        precondition(x.count == y.count, "equipartitionMIC: \(x.count) x values, \(y.count) y values")
        let n = x.count
        if n < 4 { return 0 }
        return equipartitionMIC(Ranks(x), Ranks(y), bound: gridBound(n))
    }

    static func equipartitionMIC(_ rx: Ranks, _ ry: Ranks, bound: Int) -> Float {
        var best = 0.0
        var scratch: [Int32] = []
        var yBins: [Int: [Int32]] = [:]
        for nx in 2...(bound / 2) {
            let bx = rx.bins(nx)
            for ny in 2...max(2, bound / nx) where nx * ny <= bound {
                if yBins[ny] == nil { yBins[ny] = ry.bins(ny) }
                let mi = mutualInformation(bx, nx, yBins[ny]!, ny, scratch: &scratch)
                best = max(best, mi / log(Double(min(nx, ny))))
            }
        }
        return Float(min(best, 1))
    }

    /// What `positionMIC` relates to the position.
    public enum PositionSignal: String, Sendable {
        /// Every channel's value, MIC averaged over channels.
        case channels
        /// The per-token L2 norm (one number per token; artifact tokens are high-norm outliers).
        case norm
    }

    /// MIC estimate (`equipartitionMIC`) between features and the normalised patch index
    /// p / (P − 1) (row-major), over all maps of one grid. With `.channels`, the mean over
    /// channels of each channel's MIC. Samples are taken every ⌈n / maxSamples⌉-th (position,
    /// map) pair to bound the cost on large maps.
    public static func positionMIC(_ maps: [Tensor], of signal: PositionSignal = .channels, maxSamples: Int = 4096) throws -> Float {
        let (h, w, c) = try checkSameGrid(maps, "position MIC")
        let p = h * w
        guard p >= 2 else { throw ArtifactMetricsError("position MIC: the grid has \(p) position(s); need at least 2") }
        let total = p * maps.count
        let step = max(1, (total + maxSamples - 1) / max(1, maxSamples))
        let samples = Array(stride(from: 0, to: total, by: step))  // sample s = map s / P, position s % P
        let position = samples.map { Float($0 % p) / Float(p - 1) }
        let rx = Ranks(position)
        let bound = gridBound(samples.count)
        guard samples.count >= 4 else { return 0 }
        switch signal {
        case .norm:
            let values = samples.map { s -> Float in
                let m = maps[s / p], base = (s % p) * c
                var acc: Float = 0
                for ch in 0..<c { let v = m[flat: base + ch]; acc += v * v }
                return acc.squareRoot()
            }
            return equipartitionMIC(rx, Ranks(values), bound: bound)
        case .channels:
            // Each worker writes its own channel's element, so the tensor is shared safely.
            let scores = Tensor(zeros: [c])  // (C,)
            Parallel.forEach(c) { ch in
                let values = samples.map { maps[$0 / p][flat: ($0 % p) * c + ch] }
                scores[flat: ch] = equipartitionMIC(rx, Ranks(values), bound: bound)
            }
            return scores.scalars.reduce(0, +) / Float(c)
        }
    }

    // MARK: Equivariance

    /// A (H, W, C) feature map mirrored left-right (along W), with the one flip op of the engine.
    public static func flippedWidth(_ map: Tensor) -> Tensor {
        precondition(map.rank == 3, "flippedWidth: expected (H, W, C), got \(map.shape)")
        return withNoGrad { map.flipped(axis: 1) }  // (H, W, C)
    }

    /// The token window rows `top ..< top + height`, columns `left ..< left + width` of a
    /// (H, W, C) map: what a token-aligned crop of the image should give an equivariant extractor.
    public static func croppedTokens(_ map: Tensor, top: Int, left: Int, height: Int, width: Int) throws -> Tensor {
        guard map.rank == 3, top >= 0, left >= 0, height >= 1, width >= 1,
            top + height <= map.shape[0], left + width <= map.shape[1]
        else {
            throw ArtifactMetricsError(
                "token crop rows \(top)..<\(top + height), columns \(left)..<\(left + width) does not fit a map of shape \(map.shape)")
        }
        return withNoGrad { map.slice(axis: 0, top..<(top + height)).slice(axis: 1, left..<(left + width)) }  // (h, w, C)
    }

    /// Equivariance error of a feature extractor f under an image transform T (a flip, a
    /// token-aligned crop), over pairs (f(T x), T f(x)) of several images:
    ///
    /// ```
    /// E = Σ_images Σ_p ‖f(T x)_p − (T f(x))_p‖²  /  Σ_images Σ_p ‖(T f(x))_p − μ‖²
    /// ```
    ///
    /// with μ the mean token of that image's T f(x). Features that depend only on the content
    /// under each token commute with T, so E ≈ 0; a pattern tied to the patch position stays put
    /// while the content moves, so it adds ‖G − T G‖² to the numerator. E is scale-free, and about
    /// 2 for two unrelated maps of equal spread. Unlike the position-variance ratio and MIC it
    /// needs no set of images with varied content: one photo is enough.
    public static func equivarianceError(_ pairs: [(ofTransformed: Tensor, transformedFeatures: Tensor)]) throws -> Float {
        guard !pairs.isEmpty else { throw ArtifactMetricsError("equivariance error: no feature pairs") }
        var num = 0.0, den = 0.0
        for (i, pair) in pairs.enumerated() {
            let a = pair.ofTransformed, b = pair.transformedFeatures
            guard a.rank == 3, a.shape == b.shape else {
                throw ArtifactMetricsError(
                    "equivariance error: pair \(i) has f(T x) of shape \(a.shape) and T f(x) of shape \(b.shape); both must be one (H, W, C)")
            }
            let c = a.shape[2], n = a.count / c
            let av = a.scalars, bv = b.scalars
            var mean = [Double](repeating: 0, count: c)
            for t in 0..<n { for ch in 0..<c { mean[ch] += Double(bv[t * c + ch]) } }
            for ch in 0..<c { mean[ch] /= Double(n) }
            for t in 0..<n {
                for ch in 0..<c {
                    let d = Double(av[t * c + ch]) - Double(bv[t * c + ch]), e = Double(bv[t * c + ch]) - mean[ch]
                    num += d * d
                    den += e * e
                }
            }
        }
        return den > 0 ? Float(num / den) : 0
    }

    // MARK: Planted ground truth

    /// Scores a denoised whole-image map against the planted truth. `raw` is the planted
    /// (V+1, H, W, C) stack (its last view is the whole image); `denoised` is (H, W, C), or a
    /// (V+1, H, W, C) stack whose last view is used. Passing the raw whole-image view itself as
    /// `denoised` gives the baseline (nothing removed, so `removedVsPlanted` is 0).
    public static func plantedScore(raw: Tensor, cleanFull: Tensor, artifact: Tensor, denoised: Tensor) throws -> PlantedScore {
        guard raw.rank == 4, cleanFull.rank == 3, artifact.shape == cleanFull.shape, Array(raw.shape.dropFirst()) == cleanFull.shape else {
            throw ArtifactMetricsError(
                "planted data: expected raw (V+1, H, W, C), clean_full and artifact (H, W, C); got raw \(raw.shape), clean_full \(cleanFull.shape), artifact \(artifact.shape)"
            )
        }
        let d: Tensor
        if denoised.rank == 4 { d = lastView(denoised) } else { d = denoised }
        guard d.shape == cleanFull.shape else {
            throw ArtifactMetricsError(
                "planted data: denoised map \(denoised.shape) does not match the planted grid \(cleanFull.shape) (or a (V+1, H, W, C) stack)")
        }
        return PlantedScore(raw: lastView(raw), denoised: d, cleanFull: cleanFull, artifact: artifact)
    }

    static func lastView(_ stack: Tensor) -> Tensor {
        let n = stack.shape[0]
        return stack.detach().slice(axis: 0, (n - 1)..<n).reshape(Array(stack.shape.dropFirst()))  // (H, W, C)
    }

    // MARK: Tables

    /// One method's row of the feature-map table.
    public struct Row: Sendable {
        public var label: String
        public var maps: Int
        public var grid: [Int]
        public var positionVarianceRatio: Float
        public var channelMIC: Float
        public var normMIC: Float
        /// `equivarianceError` under a left-right flip, over the images it was measured on (nil:
        /// not measured for this method).
        public var flipEquivariance: Float?
    }

    /// Computes a row over one method's maps.
    public static func row(label: String, maps: [Tensor], maxSamples: Int = 4096) throws -> Row {
        let (h, w, c) = try checkSameGrid(maps, label)
        return Row(
            label: label, maps: maps.count, grid: [h, w, c],
            positionVarianceRatio: try positionVarianceRatio(maps),
            channelMIC: try positionMIC(maps, of: .channels, maxSamples: maxSamples),
            normMIC: try positionMIC(maps, of: .norm, maxSamples: maxSamples))
    }

    /// A markdown table of rows.
    public static func markdown(_ rows: [Row]) -> String {
        var s =
            "| method | maps | grid (H, W, C) | position-variance ratio | MIC_eq channels vs position | MIC_eq norm vs position | flip equivariance error |\n"
        s += "|---|---:|---|---:|---:|---:|---:|\n"
        for r in rows {
            s += String(
                format: "| %@ | %d | %@ | %.4f | %.4f | %.4f | %@ |\n", r.label as NSString, r.maps,
                r.grid.map(String.init).joined(separator: "×") as NSString,
                r.positionVarianceRatio, r.channelMIC, r.normMIC,
                (r.flipEquivariance.map { String(format: "%.4f", $0) } ?? "—") as NSString)
        }
        return s
    }
}
