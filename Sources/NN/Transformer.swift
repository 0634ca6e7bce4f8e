import TensorCore

// timm's VisionTransformer building blocks, with timm's state-dict names.
// B = batch, N = tokens, C = channels, H = hidden (MLP) width.

/// timm `Mlp`: fc1 → activation → fc2 (dropout omitted: DVT trains without it). Keys `fc1.*`, `fc2.*`.
public final class Mlp: Layer {
    public let fc1: Linear
    public let fc2: Linear
    public let activation: Activation

    public init(_ dim: Int, hidden: Int, out: Int? = nil, activation: Activation = .gelu, rng: inout RandomGenerator) {
        fc1 = Linear(dim, hidden, rng: &rng)
        fc2 = Linear(hidden, out ?? dim, rng: &rng)
        self.activation = activation
    }

    public func namedParameters() -> [(String, Tensor)] {
        prefixed("fc1", fc1.namedParameters()) + prefixed("fc2", fc2.namedParameters())
    }

    /// (..., C) → (..., C_out)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Exact GELU fused into fc1's product at inference (Tensor.mlpGELU; composed otherwise).
        if activation == .gelu { return Tensor.mlpGELU(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias) }
        return fc2(activation(fc1(x)))  // hidden (..., H)
    }

    /// `h + self(x)·γ`, with GELU the sum in fc2's epilogue (`Tensor.mlpGELU`).
    public func callAsFunction(_ x: Tensor, residual h: Tensor, scale gamma: Tensor?) -> Tensor {
        if activation == .gelu { return Tensor.mlpGELU(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias, residual: h, scale: gamma) }
        return Tensor.residual(h, self(x), scale: gamma)
    }
}

/// timm `Attention`: a fused `qkv` Linear C → 3C (with bias), multi-head scaled dot-product
/// attention, and the output projection `proj`. Keys `qkv.*`, `proj.*`.
public final class Attention: Layer {
    public let heads: Int
    public let qkv: Linear
    public let proj: Linear

    public init(_ dim: Int, heads: Int, qkvBias: Bool = true, rng: inout RandomGenerator) {
        precondition(heads > 0 && dim % heads == 0, "Attention: dim \(dim) is not divisible by \(heads) heads")
        self.heads = heads
        qkv = Linear(dim, 3 * dim, bias: qkvBias, rng: &rng)
        proj = Linear(dim, dim, rng: &rng)
    }

    public func namedParameters() -> [(String, Tensor)] {
        prefixed("qkv", qkv.namedParameters()) + prefixed("proj", proj.namedParameters())
    }

    /// (B, N, C) → (B, N, C)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3, "Attention: input must be (B, N, C), got \(x.shape)")
        let packed = qkv(x)  // (B, N, 3C)
        let mixed = Tensor.multiHeadAttention(qkv: packed, heads: heads)  // (B, N, C)
        return proj(mixed)  // (B, N, C)
    }
}

/// timm `LayerScale`: per-channel scale `gamma` (C), initialised to `initValues`, as DINOv2's
/// `ls1`/`ls2` (timm's default init value 1e-5).
public final class LayerScale: Layer {
    public let gamma: Tensor  // (C)

    public init(_ dim: Int, initValues: Float = 1e-5) {
        gamma = Tensor(repeating: initValues, shape: [dim], requiresGrad: true)  // (C)
    }

    public func namedParameters() -> [(String, Tensor)] { [("gamma", gamma)] }

    /// (..., C) → (..., C)
    public func callAsFunction(_ x: Tensor) -> Tensor { x * gamma }
}

/// timm VisionTransformer `Block` (pre-norm):
/// ```
/// x = x + ls1(attn(norm1(x)))
/// x = x + ls2(mlp(norm2(x)))
/// ```
/// Keys `norm1.*`, `attn.qkv.*`, `attn.proj.*`, `ls1.gamma` (with layer scale), `norm2.*`,
/// `mlp.fc1.*`, `mlp.fc2.*`, `ls2.gamma` (with layer scale). LayerNorm eps 1e-6 as timm's ViTs.
/// DVT's stage-2 denoiser is one of these with heads = C/64, mlp ratio 4, GELU, no layer scale.
public final class Block: Layer {
    public let norm1: LayerNorm
    public let attn: Attention
    public let ls1: LayerScale?
    public let norm2: LayerNorm
    public let mlp: Mlp
    public let ls2: LayerScale?

    /// - Parameters:
    ///   - layerScale: `ls1`/`ls2` initial value (DINOv2 checkpoints have them), or nil for none.
    public init(
        _ dim: Int, heads: Int, mlpRatio: Double = 4, activation: Activation = .gelu,
        layerScale: Float? = nil, normEps: Float = 1e-6, rng: inout RandomGenerator
    ) {
        norm1 = LayerNorm(dim, eps: normEps)
        attn = Attention(dim, heads: heads, rng: &rng)
        ls1 = layerScale.map { LayerScale(dim, initValues: $0) }
        norm2 = LayerNorm(dim, eps: normEps)
        // timm: hidden_features = int(dim * mlp_ratio)
        mlp = Mlp(dim, hidden: Int(Double(dim) * mlpRatio), activation: activation, rng: &rng)
        ls2 = layerScale.map { LayerScale(dim, initValues: $0) }
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = prefixed("norm1", norm1.namedParameters()) + prefixed("attn", attn.namedParameters())
        if let ls1 { out += prefixed("ls1", ls1.namedParameters()) }
        out += prefixed("norm2", norm2.namedParameters()) + prefixed("mlp", mlp.namedParameters())
        if let ls2 { out += prefixed("ls2", ls2.namedParameters()) }
        return out
    }

    /// (B, N, C) → (B, N, C)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var a = attn(norm1(x))  // (B, N, C)
        if let ls1 { a = ls1(a) }
        let h = x + a  // (B, N, C)
        var m = mlp(norm2(h))  // (B, N, C)
        if let ls2 { m = ls2(m) }
        return h + m  // (B, N, C)
    }
}
