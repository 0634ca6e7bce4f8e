import Foundation
import TensorCore

/// Artifact and recovery metrics, computed the same way for every method (raw, SRT, DVT
/// stage 1 and stage 2) so their numbers can sit in one table.
public enum Metrics {
    /// Mean per-token cosine between two feature maps after subtracting each channel's mean over
    /// the grid ("centred cosine"). Centring removes a constant offset, which a per-image
    /// decomposition cannot attribute to F or G.
    ///
    /// `a`, `b`: (..., C) with the same shape.
    public static func centeredCosine(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "centeredCosine: shapes \(a.shape) and \(b.shape) differ")
        let c = a.shape.last!, n = a.count / c
        let ma = channelMeans(a), mb = channelMeans(b)
        var total = 0.0
        for t in 0..<n {
            var dot = 0.0, na = 0.0, nb = 0.0
            for ch in 0..<c {
                let x = Double(a[flat: t * c + ch]) - ma[ch], y = Double(b[flat: t * c + ch]) - mb[ch]
                dot += x * y; na += x * x; nb += y * y
            }
            // torch.cosine_similarity clamps each norm at eps = 1e-8
            total += dot / (max(na.squareRoot(), 1e-8) * max(nb.squareRoot(), 1e-8))
        }
        return Float(total / Double(max(n, 1)))
    }

    /// Cosine between two maps flattened after per-channel centring (artifact recovery: G vs truth).
    public static func flatCenteredCosine(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "flatCenteredCosine: shapes \(a.shape) and \(b.shape) differ")
        let c = a.shape.last!, n = a.count / c
        let ma = channelMeans(a), mb = channelMeans(b)
        var dot = 0.0, na = 0.0, nb = 0.0
        for t in 0..<n {
            for ch in 0..<c {
                let x = Double(a[flat: t * c + ch]) - ma[ch], y = Double(b[flat: t * c + ch]) - mb[ch]
                dot += x * y; na += x * x; nb += y * y
            }
        }
        return Float(dot / (max(na.squareRoot(), 1e-8) * max(nb.squareRoot(), 1e-8)))
    }

    static func channelMeans(_ x: Tensor) -> [Double] {
        let c = x.shape.last!, n = x.count / c
        var m = [Double](repeating: 0, count: c)
        for t in 0..<n { for ch in 0..<c { m[ch] += Double(x[flat: t * c + ch]) } }
        return m.map { $0 / Double(max(n, 1)) }
    }
}
