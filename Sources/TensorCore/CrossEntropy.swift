// Softmax cross-entropy over class logits with an ignore label, fused: one pass computes each
// row's log-sum-exp and loss, the backward rebuilds the softmax from the logits (no cached
// probabilities, which would be as large as the logits). Used by the linear segmentation probe
// (mmseg's CrossEntropyLoss on BNHead logits).
// N = number of pixels (rows), K = number of classes.
import Foundation

extension Tensor {
    /// How the summed per-pixel losses are divided.
    public enum CrossEntropyAverage: Sendable {
        /// By every pixel, ignored ones included (they contribute 0): mmseg 0.x's default
        /// (`avg_non_ignore=False`: `weight_reduce_loss` takes `loss.mean()` over all pixels).
        case allPixels
        /// By the pixels whose label is not ignored (torch's `F.cross_entropy(ignore_index=…)`).
        case validPixels
    }

    /// Cross-entropy of `logits` (N, K) against integer `labels` (N values), ignoring
    /// `ignoreIndex`:
    /// ```
    /// ℓ_n = log Σ_k exp(x_nk) − x_n,y_n        (0 where y_n = ignoreIndex)
    /// L   = Σ_n ℓ_n / D,    D = N (allPixels) or #{n : y_n ≠ ignore} (validPixels)
    /// dx_nk = (softmax(x_n)_k − [k = y_n]) · dL / D   (0 on ignored rows)
    /// ```
    /// A label outside 0..<K that is not `ignoreIndex` is a programming error (the dataset
    /// readers check labels first) and traps with the offending row.
    /// Returns a scalar; NaN when D is 0.
    public static func crossEntropy(
        _ logits: Tensor, labels: [Int32], ignoreIndex: Int32 = 255,
        average: CrossEntropyAverage = .allPixels
    ) -> Tensor {
        precondition(logits.rank == 2, "crossEntropy: logits must be (N, K), got \(logits.shape)")
        let n = logits.shape[0], k = logits.shape[1]
        precondition(labels.count == n, "crossEntropy: \(labels.count) labels for \(n) logit rows")
        for (r, y) in labels.enumerated() where y != ignoreIndex {
            precondition(y >= 0 && Int(y) < k, "crossEntropy: label \(y) at row \(r) is outside 0..<\(k) and not the ignore index \(ignoreIndex)")
        }
        let valid = labels.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        let denominator = average == .allPixels ? n : valid
        let px = logits.ptr
        // Per-row log-sum-exp, kept for the backward (N floats, not N·K).
        let lse = Tensor.uninitialized([n])  // (N)
        let pl = lse.ptr
        let total = RowKernels.blockedSum(n) { start, count in
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(k, 1))
            defer { tmp.deallocate() }
            var s: Float = 0
            for r in start..<(start + count) {
                let row = px + r * k
                let m = RowKernels.max(row, k)
                let l = m + Foundation.log(RowKernels.expShiftedSum(row, tmp, k, shift: m))
                pl[r] = l
                let y = labels[r]
                if y != ignoreIndex { s += l - row[Int(y)] }
            }
            return s
        }
        let out = Tensor.scalar(denominator == 0 ? .nan : Float(total / Double(denominator)))
        return out.record("crossEntropy", [logits]) { g in
            guard denominator > 0 else { return }
            let scale = g.ptr[0] / Float(denominator)
            let gx = logits.gradBuffer(), pl = lse.ptr
            Parallel.forRanges(n, grain: Swift.max(1, 4096 / Swift.max(k, 1))) { range in
                for r in range {
                    let y = labels[r]
                    if y == ignoreIndex { continue }
                    let row = px + r * k, dx = gx + r * k, l = pl[r]
                    for j in 0..<k { dx[j] += scale * Foundation.exp(row[j] - l) }
                    dx[Int(y)] -= scale
                }
            }
        }
    }
}
