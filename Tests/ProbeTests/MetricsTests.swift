import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Probe

@Suite struct SegmentationMetricsTests {
    // Hand-computed from mmseg's definitions (intersect_and_union + total_area_to_metrics).
    @Test func areasAreSummedOverTheSetThenDivided() {
        var m = SegmentationMetrics(classes: 3)
        m.add(prediction: [0, 1, 1, 2], label: [0, 0, 1, 255])  // the 255 pixel (predicted 2) is dropped
        m.add(prediction: [1, 0, 0, 0], label: [1, 1, 0, 0])
        #expect(m.intersection == [3, 2, 0])
        #expect(m.predicted == [4, 3, 0])
        #expect(m.labelled == [4, 3, 0])
        #expect(m.union == [5, 4, 0])
        #expect(abs(m.iou[0] - 0.6) < 1e-12 && abs(m.iou[1] - 0.5) < 1e-12 && m.iou[2].isNaN)
        #expect(abs(m.mIoU - 0.55) < 1e-12)  // class 2 absent from both: NaN, skipped
        #expect(abs(m.mAcc - (0.75 + 2.0 / 3) / 2) < 1e-12)
        #expect(abs(m.aAcc - 5.0 / 7) < 1e-12)
        // Per-image averaging would give ((1/2 + 2/3)/2 + (1/2 + 1/2)/2)/2 ≠ 0.55.
    }

    @Test func predictedButNeverLabelledCountsAsZeroIoUAndNaNAccuracy() {
        var m = SegmentationMetrics(classes: 3)
        m.add(prediction: [0, 2, 1], label: [0, 0, 1])
        #expect(m.iou[2] == 0)
        #expect(m.accuracy[2].isNaN)
        #expect(abs(m.mIoU - (0.5 + 1 + 0) / 3) < 1e-12)
        #expect(abs(m.mAcc - (0.5 + 1) / 2) < 1e-12)
    }

    @Test func allIgnoredGivesNaN() {
        var m = SegmentationMetrics(classes: 2)
        m.add(prediction: [0, 1], label: [255, 255])
        #expect(m.mIoU.isNaN && m.aAcc.isNaN)
    }

    @Test func reduceZeroLabelAsMMSeg() {
        #expect(reduceZeroLabel([0, 1, 150, 255, 5]) == [255, 0, 149, 255, 4])
    }
}

@Suite struct DepthMetricsTests {
    @Test func handComputedCaseWithCaps() {
        // gt 0 (≤ min_depth) and 20 (≥ max_depth 10) are not evaluated.
        let m = DepthMetrics.image(gt: [1, 2, 4, 0, 20], pred: [1, 1, 5, 3, 3])
        #expect(abs(m.delta1 - 1.0 / 3) < 1e-12)  // ratios 1, 2, 1.25: 1.25 is not < 1.25
        #expect(abs(m.delta2 - 2.0 / 3) < 1e-12)
        #expect(abs(m.delta3 - 2.0 / 3) < 1e-12)  // 2 is not < 1.25³ = 1.953
        #expect(abs(m.absRel - 0.25) < 1e-12)
        #expect(abs(m.sqRel - 0.25) < 1e-12)
        #expect(abs(m.rmse - (2.0 / 3).squareRoot()) < 1e-12)
        #expect(abs(m.log10 - (log10(2.0) + abs(log10(4.0) - log10(5.0))) / 3) < 1e-12)
        #expect(abs(m.rmseLog - ((log(2.0) * log(2.0) + log(1.25) * log(1.25)) / 3).squareRoot()) < 1e-12)
    }

    @Test func eigenCropKeepsRows45To470AndColumns41To600() {
        let h = 480, w = 640
        let crop = DepthMetrics.eigenCrop(height: h, width: w)
        #expect(crop.filter { $0 }.count == (471 - 45) * (601 - 41))
        #expect(!crop[44 * w + 100] && crop[45 * w + 100] && crop[470 * w + 100] && !crop[471 * w + 100])
        #expect(!crop[100 * w + 40] && crop[100 * w + 41] && crop[100 * w + 600] && !crop[100 * w + 601])
        var gt = [Float](repeating: 2, count: h * w), pred = gt
        pred[0] = 9  // outside the crop: not counted
        let m = DepthMetrics.image(gt: gt, pred: pred, crop: crop)
        #expect(m.rmse == 0 && m.delta1 == 1)
        pred[100 * w + 100] = 9
        gt[0] = 2
        #expect(DepthMetrics.image(gt: gt, pred: pred, crop: crop).rmse > 0)
    }

    @Test func datasetValueIsNanmeanOverImages() {
        let a = DepthMetrics.image(gt: [1, 1], pred: [1, 2])  // rmse √0.5
        let empty = DepthMetrics.image(gt: [0, 0], pred: [1, 1])  // nothing valid: NaN
        #expect(empty.rmse.isNaN)
        let b = DepthMetrics.image(gt: [2], pred: [2])  // rmse 0
        let m = DepthMetrics.mean([a, empty, b])
        #expect(abs(m.rmse - 0.5.squareRoot() / 2) < 1e-12)
    }
}

@Suite struct ProbeOpsTests {
    @Test func crossEntropyGradientAndValue() {
        let x = randn([6, 4], seed: 3)
        let labels: [Int32] = [0, 3, 255, 1, 2, 255]
        gradCheck("crossEntropy all", [x]) { Tensor.crossEntropy($0[0], labels: labels) }
        gradCheck("crossEntropy valid", [x]) { Tensor.crossEntropy($0[0], labels: labels, average: .validPixels) }
        // Value against the composed log-softmax.
        let v = x.scalars
        var s = 0.0
        for (r, y) in labels.enumerated() where y != 255 {
            let row = v[(r * 4)..<(r * 4 + 4)].map(Double.init)
            let m = row.max()!
            s += m + log(row.map { exp($0 - m) }.reduce(0, +)) - row[Int(y)]
        }
        #expect(abs(Double(Tensor.crossEntropy(x, labels: labels).item) - s / 6) < 1e-5)
        #expect(abs(Double(Tensor.crossEntropy(x, labels: labels, average: .validPixels).item) - s / 4) < 1e-5)
        #expect(Tensor.crossEntropy(x, labels: [Int32](repeating: 255, count: 6), average: .validPixels).item.isNaN)
    }

    @Test func bilinearResizeMatchesTorchAlignCornersFalse() {
        // F.interpolate(tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear", align_corners=False)
        let x = Tensor([0, 1], shape: [1, 2, 1])
        #expect(BilinearResize.resize(x, height: 1, width: 4).scalars == [0, 0.25, 0.75, 1])
        // 2×2 → 3×3: torch gives [[0, .5, 1], [1, 1.5, 2], [2, 2.5, 3]] for [[0, 1], [2, 3]].
        let y = BilinearResize.resize(Tensor([0, 1, 2, 3], shape: [2, 2, 1]), height: 3, width: 3).scalars
        expectClose(y, [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3], rtol: 1e-6, atol: 1e-6)
        // Downsampling 4 → 2 samples at 0.5 and 2.5.
        expectClose(
            BilinearResize.resize(Tensor([0, 1, 2, 3], shape: [1, 4, 1]), height: 1, width: 2).scalars, [0.5, 2.5],
            rtol: 1e-6, atol: 1e-6)
    }

    @Test func segmentationHeadGradients() {
        let head = SegmentationHead(channels: 4, classes: 3, seed: 1)
        // Larger conv weights than the N(0, 0.01) init so every parameter's gradient is well above noise.
        for i in 0..<head.weight.count { head.weight[flat: i] = Float(i % 5) * 0.3 - 0.6 }
        let feats = randn([2, 3, 3, 4], seed: 5)
        var labels = (0..<50).map { Int32($0 % 3) }
        labels[7] = 255
        labels[31] = 255
        gradCheck("BNHead", [feats, head.bn.weight, head.bn.bias, head.weight, head.bias], eps: 1e-2, rtol: 3e-2, atol: 3e-3) { _ in
            let logits = head.tokenLogits(feats, training: true)
            let up = Tensor.concat(
                [
                    SegmentationHead.upsample(logits, image: 0, height: 5, width: 5),
                    SegmentationHead.upsample(logits, image: 1, height: 5, width: 5),
                ], axis: 0)
            return Tensor.crossEntropy(up, labels: labels)
        }
    }

    @Test func batchNormEvalUsesRunningStatistics() {
        let bn = ChannelBatchNorm(channels: 2)
        let x = Tensor([1, 10, 3, 30], shape: [2, 2])
        _ = bn(x, training: true)
        #expect(abs(bn.runningMean[0] - 0.2) < 1e-6 && abs(bn.runningMean[1] - 2) < 1e-5)
        // unbiased variance of [1, 3] is 2: 0.9·1 + 0.1·2
        #expect(abs(bn.runningVar[0] - 1.1) < 1e-5)
        let y = bn(x, training: true).scalars
        expectClose(y, [-1, -1, 1, 1], rtol: 1e-3, atol: 1e-3)
    }

    @Test func depthHeadAndLossGradients() {
        let head = DepthHead(channels: 4, bins: 8, minDepth: 0.5, maxDepth: 4, seed: 2)
        let feats = randn([2, 2, 4], seed: 9)
        var gt = (0..<64).map { 1 + Float($0 % 7) * 0.3 }
        gt[5] = 0  // invalid pixel
        gradCheck("depth head + SigLoss + GradientLoss", [feats, head.weight, head.bias], eps: 1e-2, rtol: 5e-2, atol: 5e-3) { _ in
            let pred = head.depth(feats, height: 8, width: 8)
            return DepthLosses.sigLoss(pred: pred, gt: gt, warmUp: false)! + DepthLosses.gradientLoss(pred: pred, gt: gt, height: 8, width: 8)! * 0.5
        }
        gradCheck("SigLoss warm-up", [feats, head.weight]) { _ in
            DepthLosses.sigLoss(pred: head.depth(feats, height: 8, width: 8), gt: gt, warmUp: true)!
        }
    }

    @Test func depthIsInTheBinRange() {
        let head = DepthHead(channels: 3, seed: 4)
        let d = head.depth(randn([2, 3, 3], seed: 1, requiresGrad: false)).scalars
        #expect(d.count == 8 * 12 && d.allSatisfy { $0 >= 0.001 && $0 <= 10 })
    }

    @Test func sigLossValue() {
        // g = ln(p + ε) − ln(t + ε); unbiased variance + 0.15 mean², square root.
        let pred = Tensor([1, 2, 3], shape: [3, 1])
        let gt: [Float] = [1, 1, 0]
        let g = [log(1.001) - log(1.001), log(2.001) - log(1.001)]
        let mean = (g[0] + g[1]) / 2
        let variance = ((g[0] - mean) * (g[0] - mean) + (g[1] - mean) * (g[1] - mean)) / 1
        let expected = (variance + 0.15 * mean * mean).squareRoot()
        #expect(abs(Double(DepthLosses.sigLoss(pred: pred, gt: gt, warmUp: false)!.item) - expected) < 1e-5)
        #expect(abs(Double(DepthLosses.sigLoss(pred: pred, gt: gt, warmUp: true)!.item) - (0.15 * mean * mean).squareRoot()) < 1e-5)
        #expect(DepthLosses.sigLoss(pred: pred, gt: [0, 0, 0], warmUp: false) == nil)
    }

    @Test func schedulesFollowMMCV() {
        let seg = ProbeOptions.official(.segmentation)
        #expect(abs(seg.learningRate(at: 0) - 1e-3 * 1e-6) < 1e-15)
        #expect(abs(seg.learningRate(at: 1500) - 1e-3 * (1 - 1500.0 / 40000)) < 1e-12)
        #expect(abs(seg.learningRate(at: 20000) - 0.5e-3) < 1e-12)
        let depth = ProbeOptions.official(.depth)
        #expect(abs(depth.learningRate(at: 19200) - (5e-3 * 1e-8 + (5e-3 - 5e-11) * 0.5)) < 1e-12)
        #expect(depth.gradientLossWeight == 0 && depth.gradClip == 35)
    }
}
