import Foundation

/// The depth metrics of DINOv2's depth evaluation as DVT ships it
/// (evaluation/depth/core/evaluation/metrics.py and datasets/nyu.py):
/// - per image, the evaluated pixels are those with min_depth < gt < max_depth
///   (nyu.py:212, `eval_mask`) inside the eigen crop rows 45..<471, columns 41..<601 of the
///   480×640 frame (nyu.py:225), and again min_depth < gt < max_depth (metrics.py:37-39);
/// - on those pixels (metrics.py:12-32): δ_k = mean(max(gt/pred, pred/gt) < 1.25^k),
///   AbsRel = mean(|gt − pred| / gt), SqRel = mean((gt − pred)² / gt), RMSE = √mean((gt − pred)²),
///   RMSE_log = √mean((ln gt − ln pred)²), log10 = mean(|log10 gt − log10 pred|),
///   SILog = 100·√(mean(e²) − mean(e)²) with e = ln pred − ln gt;
/// - an image with no valid pixel gives NaN for every metric (metrics.py:9-10);
/// - the dataset value of each metric is the `nanmean` over images (metrics.py:95-103), not a
///   pixel-pooled value.
public struct DepthMetrics: Sendable, Equatable, Codable {
    public var delta1 = Double.nan, delta2 = Double.nan, delta3 = Double.nan
    public var absRel = Double.nan, sqRel = Double.nan, rmse = Double.nan
    public var log10 = Double.nan, rmseLog = Double.nan, silog = Double.nan

    public init() {}

    public static let names = ["a1", "a2", "a3", "abs_rel", "rmse", "log_10", "rmse_log", "silog", "sq_rel"]
    public var values: [Double] { [delta1, delta2, delta3, absRel, rmse, log10, rmseLog, silog, sqRel] }

    /// DVT's NYU caps (vitb_nyu_linear_config.py:108-109).
    public static let nyuMinDepth = 0.001, nyuMaxDepth = 10.0

    /// The eigen crop as a mask over an H×W frame: rows 45..<471, columns 41..<601 (nyu.py:225,
    /// written for NYU's 480×640 frames; on a smaller frame the crop is clipped to it).
    public static func eigenCrop(height: Int, width: Int) -> [Bool] {
        var m = [Bool](repeating: false, count: height * width)
        for y in 45..<min(471, height) { for x in 41..<min(601, width) { m[y * width + x] = true } }
        return m
    }

    /// One image's metrics. `gt` and `pred` are row-major metres of the same size; `crop`, when
    /// given, is the evaluation region (`eigenCrop`).
    public static func image(
        gt: [Float], pred: [Float], crop: [Bool]? = nil,
        minDepth: Double = nyuMinDepth, maxDepth: Double = nyuMaxDepth
    ) -> DepthMetrics {
        precondition(gt.count == pred.count, "DepthMetrics.image: \(gt.count) ground-truth pixels vs \(pred.count) predicted")
        if let crop { precondition(crop.count == gt.count, "DepthMetrics.image: crop of \(crop.count) pixels for \(gt.count)") }
        var n = 0
        var a1 = 0, a2 = 0, a3 = 0
        var absRel = 0.0, sqRel = 0.0, sq = 0.0, sqLog = 0.0, l10 = 0.0, e1 = 0.0, e2 = 0.0
        for i in 0..<gt.count {
            let g = Double(gt[i]), p = Double(pred[i])
            guard g > minDepth, g < maxDepth, crop?[i] ?? true else { continue }
            n += 1
            let t = max(g / p, p / g)
            if t < 1.25 { a1 += 1 }
            if t < 1.25 * 1.25 { a2 += 1 }
            if t < 1.25 * 1.25 * 1.25 { a3 += 1 }
            absRel += abs(g - p) / g
            sqRel += (g - p) * (g - p) / g
            sq += (g - p) * (g - p)
            let le = Foundation.log(p) - Foundation.log(g)
            sqLog += le * le
            e1 += le
            e2 += le * le
            l10 += abs(Foundation.log10(g) - Foundation.log10(p))
        }
        var m = DepthMetrics()
        guard n > 0 else { return m }
        let d = Double(n)
        m.delta1 = Double(a1) / d; m.delta2 = Double(a2) / d; m.delta3 = Double(a3) / d
        m.absRel = absRel / d; m.sqRel = sqRel / d; m.rmse = (sq / d).squareRoot()
        m.rmseLog = (sqLog / d).squareRoot(); m.log10 = l10 / d
        m.silog = (max(e2 / d - (e1 / d) * (e1 / d), 0)).squareRoot() * 100
        return m
    }

    /// How many pixels of `gt` `image` would score: min_depth < gt < max_depth (no crop).
    public static func validPixels(gt: [Float], minDepth: Double = nyuMinDepth, maxDepth: Double = nyuMaxDepth) -> Int {
        gt.reduce(0) { $0 + (Double($1) > minDepth && Double($1) < maxDepth ? 1 : 0) }
    }

    /// The dataset value: each metric's `nanmean` over images.
    public static func mean(_ images: [DepthMetrics]) -> DepthMetrics {
        func nm(_ k: KeyPath<DepthMetrics, Double>) -> Double { SegmentationMetrics.nanmean(images.map { $0[keyPath: k] }) }
        var m = DepthMetrics()
        m.delta1 = nm(\.delta1); m.delta2 = nm(\.delta2); m.delta3 = nm(\.delta3)
        m.absRel = nm(\.absRel); m.sqRel = nm(\.sqRel); m.rmse = nm(\.rmse)
        m.log10 = nm(\.log10); m.rmseLog = nm(\.rmseLog); m.silog = nm(\.silog)
        return m
    }
}
