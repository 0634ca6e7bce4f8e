import Foundation
import TensorCore

/// y = x·Wᵀ + b, torch.nn.Linear. Keys `weight` (Out, In) and `bias` (Out).
///
/// Initialisation is torch.nn.Linear's default: `kaiming_uniform_(a=√5)` on the weight, which
/// works out to U(−1/√In, 1/√In), and the bias from the same range. DVT's stage-2 block and
/// stage-1 MLPs are built with these defaults (stand-alone timm `Block`/`nn.Sequential`, no
/// ViT `init_weights` pass).
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Tensor  // (Out, In)
    public let bias: Tensor?  // (Out)

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RandomGenerator) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: features must be positive, got \(inFeatures) → \(outFeatures)")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()  // torch: 1/sqrt(fan_in)
        weight = Tensor.uniform([outFeatures, inFeatures], -bound, bound, rng: &rng, requiresGrad: true)  // (Out, In)
        self.bias = bias ? Tensor.uniform([outFeatures], -bound, bound, rng: &rng, requiresGrad: true) : nil  // (Out)
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [("weight", weight)]
        if let bias { out.append(("bias", bias)) }
        return out
    }

    /// (..., In) → (..., Out)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x, weight, bias)
    }
}
