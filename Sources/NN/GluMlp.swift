import TensorCore

// timm's gated MLPs (timm 1.0.31, timm/layers/mlp.py). B = batch, N = tokens, C = channels,
// H = hidden width (the gated width, i.e. fc2's input).

extension Tensor {
    /// SiLU (swish) x·σ(x), torch `nn.SiLU`, composed from `sigmoid` and `*` (so it has a
    /// backward through them).
    public func silu() -> Tensor { self * sigmoid() }
}

/// timm `SwiGLUPacked` = `GluMlp(act_layer=nn.SiLU, gate_last=False)` (mlp.py lines 57, 112),
/// DINOv2 giant's MLP: one packed `fc1` C → 2H whose FIRST half is SiLU-gated,
/// `fc2(silu(h[:, :H]) · h[:, H:])`. Keys `fc1.*` (2H, C), `fc2.*` (C, H).
public final class GluMlp: Layer {
    public let fc1: Linear
    public let fc2: Linear
    public var hidden: Int { fc2.inFeatures }

    /// - Parameter hidden: H, the gated width (fc1 has 2H outputs).
    public init(_ dim: Int, hidden: Int, rng: inout RandomGenerator) {
        fc1 = Linear(dim, 2 * hidden, rng: &rng)
        fc2 = Linear(hidden, dim, rng: &rng)
    }

    public func namedParameters() -> [(String, Tensor)] {
        prefixed("fc1", fc1.namedParameters()) + prefixed("fc2", fc2.namedParameters())
    }

    /// (B, N, C) → (B, N, C)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = fc1(x)  // (B, N, 2H)
        let axis = h.rank - 1, w = hidden
        let gate = h.slice(axis: axis, 0..<w)  // (B, N, H), x1 of `chunk(2)`
        let value = h.slice(axis: axis, w..<(2 * w))  // (B, N, H), x2
        return fc2(gate.silu() * value)  // (B, N, C)
    }
}

/// timm `SwiGLU` (mlp.py line 115), EVA-02's MLP: separate gate and value projections and,
/// with `scale_mlp`, a LayerNorm on the gated hidden, `fc2(norm(silu(fc1_g(x)) · fc1_x(x)))`.
/// Keys `fc1_g.*`, `fc1_x.*` (H, C), `norm.*` (H), `fc2.*` (C, H).
public final class SwiGLU: Layer {
    public let fc1g: Linear
    public let fc1x: Linear
    public let norm: LayerNorm?
    public let fc2: Linear

    public init(_ dim: Int, hidden: Int, norm normEps: Float?, rng: inout RandomGenerator) {
        fc1g = Linear(dim, hidden, rng: &rng)
        fc1x = Linear(dim, hidden, rng: &rng)
        norm = normEps.map { LayerNorm(hidden, eps: $0) }
        fc2 = Linear(hidden, dim, rng: &rng)
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = prefixed("fc1_g", fc1g.namedParameters()) + prefixed("fc1_x", fc1x.namedParameters())
        if let norm { out += prefixed("norm", norm.namedParameters()) }
        return out + prefixed("fc2", fc2.namedParameters())
    }

    /// (B, N, C) → (B, N, C)
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = fc1g(x).silu() * fc1x(x)  // (B, N, H)
        if let norm { h = norm(h) }
        return fc2(h)  // (B, N, C)
    }
}
