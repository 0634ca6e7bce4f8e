import TensorCore

/// A module with a one-tensor forward pass, so layers can be chained (`Sequential`).
public protocol Layer: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}
