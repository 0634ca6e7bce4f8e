import TensorCore

/// A module with a one-tensor forward pass, so layers can be chained (`Sequential`).
public protocol Layer: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
    /// `h + self(x)·γ` (`Tensor.residual`; γ per channel, or 1 when nil): a block's residual
    /// branch. A layer whose last op is a product may add h in that product's epilogue instead
    /// (same bits); the default runs the layer, then the residual pass.
    func callAsFunction(_ x: Tensor, residual h: Tensor, scale gamma: Tensor?) -> Tensor
}

extension Layer {
    public func callAsFunction(_ x: Tensor, residual h: Tensor, scale gamma: Tensor?) -> Tensor {
        Tensor.residual(h, self(x), scale: gamma)
    }
}
