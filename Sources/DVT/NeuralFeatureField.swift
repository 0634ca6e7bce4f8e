import Foundation
import NN
import TensorCore

// DVT's neural feature field F: image coordinates → clean features, a multiresolution hash
// grid followed by a small ReLU MLP.
// Letters: N points, L levels, F features per level, T table rows, C feature channels.

/// The clean-feature field of DVT stage 1:
///
/// ```
/// F(x) = W₂ · relu(W₁ · enc(x) + b₁) + b₂,    enc = hashGridEncode(x) ∈ R^{L·F}
/// ```
/// with hidden width C/2, as DVT's `NeuralFeatureField` (tiny-cuda-nn `HashGrid` encoding, then
/// `nn.Sequential(Linear(L·F, C/2), ReLU, Linear(C/2, C))`).
///
/// Parameter keys (those of the project's PyTorch port `dvt_torch.py`, so its state dicts load
/// by name):
/// - `grid.params` (T, F): every level's table rows back to back (`HashGridLayout.offsets`);
///   updated with the row-sparse Adam, row width F.
/// - `mlp.0.weight` (C/2, L·F), `mlp.0.bias` (C/2), `mlp.2.weight` (C, C/2), `mlp.2.bias` (C).
///
/// - Paper: Yang et al., "Denoising Vision Transformers" (ECCV 2024), §3.2; Müller et al.,
///   "Instant Neural Graphics Primitives" (2022) for the encoding.
public final class NeuralFeatureField: Module {
    public let layout: HashGridLayout
    public let dim: Int
    /// (T, F)
    public let table: Tensor
    /// L·F → C/2 → C
    public let mlp: Sequential

    /// tiny-cuda-nn initialises grid parameters uniformly in ±1e-4 (`GridEncoding::initialize_params`,
    /// scale 1e-4); the PyTorch port does the same.
    public static let tableInitScale: Float = 1e-4

    /// - Parameters:
    ///   - dim: C, the feature dimension (even, so C/2 is whole; DVT's ViT widths all are).
    ///   - rng: draws the table (uniform ±1e-4) and then the MLP (torch `nn.Linear` default init), in that order.
    public init(dim: Int, layout: HashGridLayout, rng: inout RandomGenerator) {
        precondition(dim >= 2, "NeuralFeatureField: feature dimension must be >= 2, got \(dim)")
        self.layout = layout
        self.dim = dim
        table = Tensor.uniform(
            [layout.totalRows, layout.featuresPerLevel], -Self.tableInitScale, Self.tableInitScale,
            rng: &rng, requiresGrad: true)  // (T, F)
        mlp = Sequential.reluMLP([layout.outputDimension, dim / 2, dim], rng: &rng)
    }

    public func namedParameters() -> [(String, Tensor)] {
        [("grid.params", table)] + prefixed("mlp", mlp.namedParameters())
    }

    /// Key of the hash table among `namedParameters()` (the one parameter that is row-sparse).
    public static let tableKey = "grid.params"

    /// (N, 2) coordinates (x, y) in [0, 1] → (N, C) features.
    public func callAsFunction(_ coords: Tensor) -> Tensor {
        let enc = Tensor.hashGridEncode(table, coords: coords, layout: layout)  // (N, L·F)
        return mlp(enc)  // (N, C)
    }

    /// F on a whole-image grid of `height` × `width` tokens: x = linspace(0, 1, width) along the
    /// width, y = linspace(0, 1, height) along the height (DVT's full-image coordinates).
    /// Returns (height, width, C), without recording a graph.
    public func evaluateGrid(height: Int, width: Int) -> Tensor {
        let coords = Stage1Grid.coordinates(height: height, width: width, lo: 0, hi: 1)  // (H·W, 2)
        return withNoGrad { self(coords) }.reshape([height, width, dim])  // (H, W, C)
    }
}

/// The regular grids stage 1 samples on.
public enum Stage1Grid {
    /// torch.linspace(lo, hi, n) in Float: the first half counts up from `lo`, the second half
    /// down from `hi` (torch's symmetric CPU kernel), so both ends are exact.
    public static func linspace(_ lo: Float, _ hi: Float, _ n: Int) -> [Float] {
        if n <= 0 { return [] }
        if n == 1 { return [lo] }
        let step = (hi - lo) / Float(n - 1)
        let half = n / 2
        return (0..<n).map { i in i < half ? lo + step * Float(i) : hi - step * Float(n - 1 - i) }
    }

    /// (H·W, 2) points (x, y), row-major over (i, j) with x = linspace(lo, hi, W)[j] and
    /// y = linspace(lo, hi, H)[i], as `torch.stack(meshgrid(ys, xs, indexing="ij")[::-1], -1)`.
    public static func coordinates(height: Int, width: Int, lo: Float, hi: Float) -> Tensor {
        let xs = linspace(lo, hi, width), ys = linspace(lo, hi, height)
        var p = [Float](repeating: 0, count: height * width * 2)  // (H·W, 2)
        for i in 0..<height {
            for j in 0..<width {
                p[2 * (i * width + j)] = xs[j]
                p[2 * (i * width + j) + 1] = ys[i]
            }
        }
        return Tensor(p, shape: [height * width, 2])
    }
}
