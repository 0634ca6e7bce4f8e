import Foundation
import TensorCore

// Rotary position embedding tables of timm's RoPE ViTs, per token grid. Letters: Gh × Gw grid,
// T = Gh·Gw patch tokens, D head width, F = D/4 frequencies per axis.
// Line numbers are timm 1.0.31, timm/layers/pos_embed_sincos.py.

/// Which RoPE a ViT uses. RoPE ViTs compute positions from the token grid of each input, so a
/// crop or shifted view of any size gets its own positions, with nothing to resample.
public enum ViTRope: Sendable, Codable, Equatable {
    /// EVA-02's `RotaryEmbeddingCat` (in_pixels=False): integer token indices rescaled to the
    /// reference grid `ref_feat_shape` (pos = i · ref / G, line 181), bands
    /// temperature^(−j/F) (`freq_bands`, step 1, line 30), interleaved layout
    /// (`build_rotary_pos_embed`, repeat_interleave 2, line 530).
    case eva(referenceGrid: [Int], temperature: Float)
    /// DINOv3's `RotaryEmbeddingDinoV3` (line 1381): 0.5-centred coordinates normalised by each
    /// axis' own size into (−1, 1) (`_build_grid` 'centered', 'separate'), periods
    /// temperature^(2j/(D/2)) (`_compute_periods`, line 1474), angles 2π·coord/period,
    /// half layout (line 1491). The train-time coordinate shift/jitter/rescale are off in eval.
    case dinov3(temperature: Float)

    public var layout: RopeLayout {
        switch self {
        case .eva: return .interleaved
        case .dinov3: return .half
        }
    }

    /// sin and cos tables, each (T, D), row-major over the grid (timm `grid_indexing='ij'`),
    /// in Float arithmetic as timm computes them (float32 grid, bands and angles).
    public func tables(gridHeight gh: Int, gridWidth gw: Int, headDim d: Int) -> (sin: Tensor, cos: Tensor) {
        precondition(d % 4 == 0, "RoPE needs a head width divisible by 4, got \(d)")
        let f = d / 4
        var angles = [Float](repeating: 0, count: gh * gw * 2 * f)  // (T, 2F): [y·f…, x·f…]
        switch self {
        case .eva(let ref, let temperature):
            precondition(ref.count == 2, "EVA RoPE reference grid must be (H, W), got \(ref)")
            // freq_bands: exp = arange(F) / F in float32, bands = 1 / temperature^exp.
            let bands = (0..<f).map { 1 / Float(pow(Double(temperature), Double(Float($0) / Float(f)))) }
            let ys = (0..<gh).map { Float($0) / Float(gh) * Float(ref[0]) }
            let xs = (0..<gw).map { Float($0) / Float(gw) * Float(ref[1]) }
            fill(&angles, ys, xs, f) { pos, j in pos * bands[j] }
        case .dinov3(let temperature):
            let periods = (0..<f).map { Float(pow(Double(temperature), Double(2 * Float($0) / Float(d / 2)))) }
            let ys = (0..<gh).map { 2 * ((Float($0) + 0.5) / Float(gh)) - 1 }
            let xs = (0..<gw).map { 2 * ((Float($0) + 0.5) / Float(gw)) - 1 }
            let twoPi = Float(2 * Double.pi)
            fill(&angles, ys, xs, f) { pos, j in twoPi * pos / periods[j] }
        }
        let t = gh * gw, half = 2 * f  // D/2 distinct angles per token
        var ps = [Float](repeating: 0, count: t * d), pc = [Float](repeating: 0, count: t * d)  // (T, D) each
        for row in 0..<t {
            for k in 0..<half {
                let a = angles[row * half + k]
                let sv = Foundation.sin(a), cv = Foundation.cos(a)
                // interleaved: a0 a0 a1 a1 …; half: a0 a1 … a0 a1 …
                let (i0, i1) = layout == .interleaved ? (2 * k, 2 * k + 1) : (k, k + half)
                ps[row * d + i0] = sv; ps[row * d + i1] = sv
                pc[row * d + i0] = cv; pc[row * d + i1] = cv
            }
        }
        return (Tensor(ps, shape: [t, d]), Tensor(pc, shape: [t, d]))
    }

    /// angles[(i·Gw + j)·2F + k] = angle(y_i, k) for k < F, angle(x_j, k − F) after.
    private func fill(_ angles: inout [Float], _ ys: [Float], _ xs: [Float], _ f: Int, _ angle: (Float, Int) -> Float) {
        for (i, y) in ys.enumerated() {
            for (j, x) in xs.enumerated() {
                let o = (i * xs.count + j) * 2 * f
                for k in 0..<f {
                    angles[o + k] = angle(y, k)
                    angles[o + f + k] = angle(x, k)
                }
            }
        }
    }
}
