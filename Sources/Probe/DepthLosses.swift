import Foundation
import TensorCore

/// The depth losses of DVT's NYU config (vitb_nyu_linear_config.py:156-170), composed of engine
/// ops. `pred` is (H·W, 1) metres at the ground truth's size, `gt` the matching row-major metres.
public enum DepthLosses {
    /// SigLoss (evaluation/depth/models/losses/sigloss.py:48-65): on pixels with gt > 0
    /// (`valid_mask=True`, no max_depth in the config), g = ln(pred + ε) − ln(gt + ε), ε = 0.001,
    /// loss = √(Var(g) + 0.15·mean(g)²) with torch's unbiased variance. During the first
    /// `warm_iter` = 100 calls (`warm_up=True`) only √(0.15·mean(g)²). nil when no pixel is valid.
    public static func sigLoss(pred: Tensor, gt: [Float], warmUp: Bool) -> Tensor? {
        let valid = gt.indices.filter { gt[$0] > 0 }
        guard !valid.isEmpty else { return nil }
        let eps: Float = 0.001
        let p = pred.gatherRows(valid)  // (M, 1)
        let t = Tensor(valid.map { Foundation_log(gt[$0] + eps) }, shape: [valid.count, 1])
        let g = (p + eps).log() - t  // (M, 1)
        let mean = g.mean()
        if warmUp { return (mean.square() * 0.15).sqrt() }
        let m = Float(valid.count)
        let variance = (g - mean).square().sum() * (1 / Swift.max(m - 1, 1))
        return (variance + mean.square() * 0.15).sqrt()
    }

    /// The multi-scale gradient-matching loss of MegaDepth that gradientloss.py:33-63 means:
    /// d = (ln(pred + ε) − ln(gt + ε))·mask over the 2-D map, at strides 1, 2, 4, 6
    /// (`[::2i]`, i = 1…3), summing |d(y, x) − d(y + 2, x)| and |d(y, x) − d(y, x + 2)| over
    /// pairs valid at both ends, divided by the number of valid pixels at that stride.
    ///
    /// Note: the official code applies this to (B, 1, H, W) tensors (decode_head.py:198-211,
    /// formating.py:135), so its `[::2i, ::2i]` and `[0:-2, :]` slices act on the batch and
    /// channel axes; with 2 images per GPU both difference sets are empty and the term is
    /// exactly 0. `ProbeOptions.official` therefore sets its weight to 0 to reproduce the
    /// official training; the CPU default keeps the spatial form at weight 0.5.
    public static func gradientLoss(pred: Tensor, gt: [Float], height: Int, width: Int) -> Tensor? {
        let eps: Float = 0.001
        precondition(gt.count == height * width && pred.count == gt.count, "gradientLoss: sizes differ")
        let logPred = (pred + eps).log()  // (H·W, 1)
        let logGT = Tensor(gt.map { Foundation_log($0 + eps) }, shape: [gt.count, 1])
        let diff = logPred - logGT
        var total: Tensor?
        for stride in [1, 2, 4, 6] {
            let hs = (height + stride - 1) / stride, ws = (width + stride - 1) / stride
            func at(_ i: Int, _ j: Int) -> Int { (i * stride) * width + j * stride }
            var n = 0
            var a: [Int] = [], b: [Int] = []
            for i in 0..<hs { for j in 0..<ws where gt[at(i, j)] > 0 { n += 1 } }
            for i in 0..<hs {
                for j in 0..<ws where gt[at(i, j)] > 0 {
                    if i + 2 < hs, gt[at(i + 2, j)] > 0 { a.append(at(i, j)); b.append(at(i + 2, j)) }
                    if j + 2 < ws, gt[at(i, j + 2)] > 0 { a.append(at(i, j)); b.append(at(i, j + 2)) }
                }
            }
            guard n > 0, !a.isEmpty else { continue }
            let term = (diff.gatherRows(a) - diff.gatherRows(b)).abs().sum() * (1 / Float(n))
            total = total.map { $0 + term } ?? term
        }
        return total
    }
}

@inline(__always) func Foundation_log(_ x: Float) -> Float { Float(Foundation.log(Double(x))) }
