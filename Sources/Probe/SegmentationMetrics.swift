import Foundation

/// mmseg's segmentation metrics (mmseg/core/evaluation/metrics.py, `intersect_and_union` and
/// `total_area_to_metrics`, which DVT's evaluation calls through `evaluation = dict(metric="mIoU",
/// pre_eval=True)`, vitb_voc2012_linear_config.py:152):
/// - per image, pixels whose label is the ignore index are dropped; per class c the areas
///   |pred = c ∧ label = c| (intersection), |pred = c|, |label = c| are counted, and
///   union = |pred = c| + |label = c| − intersection;
/// - the areas are **summed over the whole validation set** before any division;
/// - IoU_c = I_c / U_c, Acc_c = I_c / |label = c|, aAcc = Σ I / Σ |label|;
/// - mIoU and mAcc are the means over classes with `nanmean`: a class absent from both the
///   predictions and the labels has IoU 0/0 = NaN and is skipped (a class that never occurs in
///   the labels has Acc NaN, skipped, and IoU 0 if it was predicted).
/// Predictions outside 0..<classes are not counted (torch.histc's range drops them).
public struct SegmentationMetrics: Sendable, Equatable {
    public let classes: Int
    public let ignoreIndex: Int32
    public private(set) var intersection: [Int]
    public private(set) var union: [Int]
    public private(set) var predicted: [Int]
    public private(set) var labelled: [Int]

    public init(classes: Int, ignoreIndex: Int32 = 255) {
        precondition(classes > 0, "SegmentationMetrics: needs at least one class")
        self.classes = classes
        self.ignoreIndex = ignoreIndex
        intersection = [Int](repeating: 0, count: classes)
        union = intersection
        predicted = intersection
        labelled = intersection
    }

    /// Adds one image: `prediction` and `label` are the same size, row-major class indices.
    /// `label` must already have `reduce_zero_label` applied when the dataset uses it
    /// (`reduceZeroLabel(_:)`), as mmseg does before `intersect_and_union`.
    public mutating func add(prediction: [Int32], label: [Int32]) {
        precondition(
            prediction.count == label.count,
            "SegmentationMetrics.add: \(prediction.count) predicted pixels vs \(label.count) labelled")
        var inter = [Int](repeating: 0, count: classes), pred = inter, lab = inter
        for i in 0..<label.count {
            let y = label[i]
            if y == ignoreIndex { continue }
            let p = prediction[i]
            let pIn = p >= 0 && Int(p) < classes, yIn = y >= 0 && Int(y) < classes
            if pIn { pred[Int(p)] += 1 }
            if yIn { lab[Int(y)] += 1 }
            if pIn && p == y { inter[Int(p)] += 1 }
        }
        for c in 0..<classes {
            intersection[c] += inter[c]
            predicted[c] += pred[c]
            labelled[c] += lab[c]
            union[c] += pred[c] + lab[c] - inter[c]
        }
    }

    public var iou: [Double] { (0..<classes).map { Double(intersection[$0]) / Double(union[$0]) } }
    public var accuracy: [Double] { (0..<classes).map { Double(intersection[$0]) / Double(labelled[$0]) } }
    /// Mean IoU over the classes whose IoU is not NaN (numpy `nanmean`; NaN if all are).
    public var mIoU: Double { SegmentationMetrics.nanmean(iou) }
    public var mAcc: Double { SegmentationMetrics.nanmean(accuracy) }
    /// Σ intersections / Σ labelled pixels.
    public var aAcc: Double { Double(intersection.reduce(0, +)) / Double(labelled.reduce(0, +)) }

    static func nanmean(_ v: [Double]) -> Double {
        let kept = v.filter { !$0.isNaN }
        return kept.isEmpty ? .nan : kept.reduce(0, +) / Double(kept.count)
    }
}

/// mmseg's `reduce_zero_label` (LoadAnnotations, and again in `intersect_and_union`): label 0
/// ("other" in ADE20K) becomes the ignore index 255 and every other label moves down by one, so
/// ADE20K's 1...150 become 0...149. Applied once, at reading time.
public func reduceZeroLabel(_ labels: [Int32]) -> [Int32] {
    labels.map { y in
        if y == 0 { return 255 }
        let r = y - 1
        return r == 254 ? 255 : r
    }
}
