import TensorCore

/// torch.nn.LayerNorm over the last axis, with affine `weight` (ones) and `bias` (zeros), (C) each.
public final class LayerNorm: Layer {
    public let weight: Tensor  // (C)
    public let bias: Tensor  // (C)
    /// Added to the variance. torch's default is 1e-5; timm ViTs (and DVT's denoiser block) use 1e-6.
    public var eps: Float

    public init(_ dim: Int, eps: Float = 1e-5) {
        precondition(dim > 0, "LayerNorm: dimension must be positive, got \(dim)")
        weight = Tensor(repeating: 1, shape: [dim], requiresGrad: true)  // (C)
        bias = Tensor(zeros: [dim], requiresGrad: true)  // (C)
        self.eps = eps
    }

    public func namedParameters() -> [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// (..., C) → (..., C)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNorm(weight: weight, bias: bias, eps: eps)
    }
}
