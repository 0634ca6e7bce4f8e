import TensorCore

/// Elementwise activations used by the layers here.
public enum Activation: String, Sendable, Codable, CaseIterable {
    /// max(x, 0)
    case relu
    /// Exact (erf) GELU, torch's `nn.GELU()` default and timm's ViT MLP activation.
    case gelu
    /// x·σ(1.702·x), OpenAI CLIP's QuickGELU.
    case quickGelu
    /// GELU's tanh approximation, torch `F.gelu(approximate="tanh")` (SigLIP in transformers).
    case geluTanh

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .relu: return x.relu()
        case .gelu: return x.gelu()
        case .quickGelu: return x.quickGelu()
        case .geluTanh: return x.geluTanh()
        }
    }
}

/// A parameterless activation layer, so it can sit in a `Sequential` (and take an index
/// there, as in torch, which shifts the next Linear's key to `2.weight`).
public final class ActivationLayer: Layer {
    public let activation: Activation
    public init(_ activation: Activation) { self.activation = activation }
    public func namedParameters() -> [(String, Tensor)] { [] }
    public func callAsFunction(_ x: Tensor) -> Tensor { activation(x) }
}

/// torch.nn.Sequential: layers applied in order, parameters named by position (`0.weight`,
/// `2.bias`, …), so checkpoints of `nn.Sequential` models load by name.
public final class Sequential: Layer {
    public let layers: [any Layer]

    public init(_ layers: [any Layer]) { self.layers = layers }

    public func namedParameters() -> [(String, Tensor)] {
        layers.enumerated().flatMap { prefixed(String($0.offset), $0.element.namedParameters()) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        layers.reduce(x) { $1($0) }
    }

    /// Linear, ReLU, Linear, ReLU, …, Linear through `widths` (`widths[0]` in, `widths.last` out),
    /// as DVT writes its residual predictor (C → C/4 → C/4 → C) and neural-field head
    /// (L·F → C/2 → C) with `nn.Sequential`: Linears at indices 0, 2, 4, …
    public static func reluMLP(_ widths: [Int], rng: inout RandomGenerator) -> Sequential {
        precondition(widths.count >= 2, "reluMLP needs at least input and output widths, got \(widths)")
        var layers: [any Layer] = []
        for k in 0..<(widths.count - 1) {
            if k > 0 { layers.append(ActivationLayer(.relu)) }
            layers.append(Linear(widths[k], widths[k + 1], rng: &rng))
        }
        return Sequential(layers)
    }
}
