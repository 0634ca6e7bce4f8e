import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import Probe

/// The probe learns on the synthetic scenes. Features here are per-token appearance statistics
/// (mean colour, colour spread, mean absolute gradients of 8×8 patches), a stand-in for a
/// backbone that keeps local appearance, so the test needs no ViT; the CLI test runs a ViT.
@Suite struct ProbeLearnsTests {
    static func features(_ img: RGBImage, patch: Int) -> Tensor {
        let gh = img.height / patch, gw = img.width / patch
        var out: [Float] = []
        for ti in 0..<gh {
            for tj in 0..<gw {
                var mean = [Double](repeating: 0, count: 3), sq = mean, gx = mean, gy = mean
                for y in (ti * patch)..<((ti + 1) * patch) {
                    for x in (tj * patch)..<((tj + 1) * patch) {
                        for c in 0..<3 {
                            let v = Double(img[x: x, y: y, c: c]) / 255
                            mean[c] += v; sq[c] += v * v
                            if x + 1 < img.width { gx[c] += abs(Double(img[x: x + 1, y: y, c: c]) / 255 - v) }
                            if y + 1 < img.height { gy[c] += abs(Double(img[x: x, y: y + 1, c: c]) / 255 - v) }
                        }
                    }
                }
                let n = Double(patch * patch)
                for c in 0..<3 { out.append(Float(mean[c] / n)) }
                for c in 0..<3 { out.append(Float((sq[c] / n - (mean[c] / n) * (mean[c] / n)).squareRoot())) }
                for c in 0..<3 { out.append(Float(gx[c] / n)); out.append(Float(gy[c] / n)) }
            }
        }
        return Tensor(out, shape: [gh, gw, 12])
    }

    @Test func mIoUWellAboveChanceOnSyntheticScenes() throws {
        let size = 48
        func examples(_ range: Range<Int>) -> [ProbeExample] {
            range.map { i in
                let (img, label) = SyntheticScenes.scene(seed: 77 &+ UInt64(i), size: size)
                var e = ProbeExample(
                    name: "\(i)", features: Self.features(img, patch: 8), trainHeight: size, trainWidth: size,
                    evalHeight: size, evalWidth: size)
                e.trainLabels = label.map { Int32($0) }
                e.evalLabels = e.trainLabels
                return e
            }
        }
        let train = examples(0..<40), val = examples(40..<56)
        var o = ProbeOptions.cpu(.segmentation)
        o.iterations = 300
        o.lr = 1e-2
        let (head, summary) = try ProbeTrainer.trainSegmentation(train, classes: 5, options: o)
        let m = ProbeTrainer.evaluateSegmentation(head, val, classes: 5)
        // Predicting background everywhere gives mIoU ≈ IoU_bg / 5 ≈ 0.15 here.
        var constant = SegmentationMetrics(classes: 5)
        for e in val { constant.add(prediction: [Int32](repeating: 0, count: e.evalLabels.count), label: e.evalLabels) }
        #expect(m.mIoU > 0.4, "mIoU \(m.mIoU) (background-only \(constant.mIoU)), final loss \(summary.finalLoss)")
        #expect(m.mIoU > 2 * constant.mIoU)
        #expect(summary.finalLoss < 1.0)
    }
}

@Suite struct ProbeFlipTests {
    @Test("a label or depth map is mirrored left-right with its feature map: out[i, j] = in[i, W − 1 − j], labels exact")
    func targetsMirrorAlongWidth() {
        let h = 3, w = 5
        let labels: [Int32] = (0..<(h * w)).map { Int32($0 % 7 == 0 ? 255 : $0) }
        let depth: [Float] = (0..<(h * w)).map { 0.001 + Float($0) * 1.37 }
        let flippedLabels = ProbeTrainer.flippedRows(labels, height: h, width: w)
        let flippedDepth = ProbeTrainer.flippedRows(depth, height: h, width: w)
        for i in 0..<h {
            for j in 0..<w {
                #expect(flippedLabels[i * w + j] == labels[i * w + (w - 1 - j)])
                #expect(flippedDepth[i * w + j] == depth[i * w + (w - 1 - j)])
            }
        }
        // The feature map beside it turns the same way: token (i, j) moves to (i, W − 1 − j).
        let map = Tensor((0..<(h * w * 2)).map(Float.init), shape: [h, w, 2])  // (H, W, C)
        let f = map.flipped(axis: 1)
        #expect(f[flat: (1 * w + 0) * 2 + 1] == map[flat: (1 * w + (w - 1)) * 2 + 1])
    }
}
