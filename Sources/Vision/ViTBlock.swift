import NN
import TensorCore

// The transformer block of every ViT family, configured by ViTConfig: timm's VisionTransformer
// `Block` and its `Eva` `EvaBlock` (timm 1.0.31, timm/models/eva.py lines 138 and 307), which
// differ only in the pieces below. B = batch, N = tokens (R prefix + T patches), C = channels.

/// Per-grid RoPE tables handed to every block: (T, D) each.
struct RopeTables {
    let sin: Tensor
    let cos: Tensor
    let layout: RopeLayout
}

/// timm `Attention` / `EvaAttention`: fused `qkv` (bias optional) or separate `q_proj`,
/// `k_proj` (no bias), `v_proj`; RoPE on q and k of the patch tokens; softmax attention; the
/// optional sub-LN `norm` (`scale_attn_inner`); `proj`.
final class ViTAttention: Module {
    let heads: Int
    let qkv: Linear?
    let q: Linear?, k: Linear?, v: Linear?
    let norm: LayerNorm?
    let proj: Linear

    init(_ config: ViTConfig, rng: inout RandomGenerator) {
        let c = config.embedDim
        precondition(config.heads > 0 && c % config.heads == 0, "ViT: dim \(c) is not divisible by \(config.heads) heads")
        heads = config.heads
        if config.separateQKV {
            // EvaAttention with qkv_fused=False: k_proj never has a bias (eva.py, EvaAttention.__init__).
            (qkv, q, k, v) = (nil, Linear(c, c, rng: &rng), Linear(c, c, bias: false, rng: &rng), Linear(c, c, rng: &rng))
        } else {
            (qkv, q, k, v) = (Linear(c, 3 * c, bias: config.qkvBias, rng: &rng), nil, nil, nil)
        }
        norm = config.attentionNorm ? LayerNorm(c, eps: config.normEps) : nil
        proj = Linear(c, c, rng: &rng)
    }

    func namedParameters() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        if let qkv { out += prefixed("qkv", qkv.namedParameters()) }
        if let q, let k, let v {
            out +=
                prefixed("q_proj", q.namedParameters()) + prefixed("k_proj", k.namedParameters())
                + prefixed("v_proj", v.namedParameters())
        }
        if let norm { out += prefixed("norm", norm.namedParameters()) }
        return out + prefixed("proj", proj.namedParameters())
    }

    /// (B, N, C) → (B, N, C); `prefix` leading tokens are not rotated.
    func callAsFunction(_ x: Tensor, rope: RopeTables?, prefix: Int) -> Tensor {
        attend(x, rope: rope, prefix: prefix, residual: nil, scale: nil)
    }

    /// `h + attn(x)·γ` (`Tensor.residual`), the sum in proj's epilogue where it can be
    /// (`Tensor.selfAttention`, `Tensor.linearResidual`).
    func callAsFunction(_ x: Tensor, rope: RopeTables?, prefix: Int, residual h: Tensor, scale gamma: Tensor?) -> Tensor {
        attend(x, rope: rope, prefix: prefix, residual: h, scale: gamma)
    }

    private func attend(_ x: Tensor, rope: RopeTables?, prefix: Int, residual h: Tensor?, scale gamma: Tensor?) -> Tensor {
        if let qkv, rope == nil, norm == nil {
            // proj(attention(qkv(x))) as one op: bf16 activations between them at bf16 inference.
            return Tensor.selfAttention(
                x, qkvWeight: qkv.weight, qkvBias: qkv.bias, projWeight: proj.weight, projBias: proj.bias, heads: heads,
                residual: h, scale: gamma)
        }
        var packed: Tensor  // (B, N, 3C), timm's [q | k | v]
        if let qkv { packed = qkv(x) } else { packed = Tensor.concat([q!(x), k!(x), v!(x)], axis: 2) }
        if let rope {
            packed = Tensor.rotaryEmbedding(
                qkv: packed, sin: rope.sin, cos: rope.cos, heads: heads,
                prefixTokens: prefix, layout: rope.layout)
        }
        var o = Tensor.multiHeadAttention(qkv: packed, heads: heads)  // (B, N, C)
        if let norm { o = norm(o) }
        guard let h else { return proj(o) }
        return Tensor.linearResidual(o, proj.weight, proj.bias, residual: h, scale: gamma)
    }
}

/// A pre-norm block, `x + ls1(attn(norm1(x)))` then `x + ls2(mlp(norm2(x)))`, with the MLP
/// of the family (timm `Mlp`, `SwiGLUPacked` or EVA's `SwiGLU`).
final class ViTBlock: Module {
    let norm1: LayerNorm
    let attn: ViTAttention
    let ls1: LayerScale?
    let norm2: LayerNorm
    let mlp: any Layer
    let ls2: LayerScale?
    let evaKeys: Bool

    /// The parameters are drawn in the order of NN's `Block` (qkv, proj, fc1, fc2), so a plain
    /// ViT's seeded random weights are what they were before the families were added.
    init(_ config: ViTConfig, layerScale: Float?, rng: inout RandomGenerator) {
        let c = config.embedDim, h = config.mlpHiddenWidth
        norm1 = LayerNorm(c, eps: config.normEps)
        attn = ViTAttention(config, rng: &rng)
        ls1 = layerScale.map { LayerScale(c, initValues: $0) }
        norm2 = LayerNorm(c, eps: config.normEps)
        switch config.mlp {
        case .mlp: mlp = Mlp(c, hidden: h, activation: config.activation, rng: &rng)
        case .swigluPacked: mlp = GluMlp(c, hidden: h, rng: &rng)
        case .swiglu: mlp = SwiGLU(c, hidden: h, norm: config.normEps, rng: &rng)
        }
        ls2 = layerScale.map { LayerScale(c, initValues: $0) }
        evaKeys = config.evaLayerScaleKeys
    }

    func namedParameters() -> [(String, Tensor)] {
        func scale(_ ls: LayerScale?, _ timm: String, _ eva: String) -> [(String, Tensor)] {
            guard let ls else { return [] }
            return evaKeys ? [(eva, ls.gamma)] : prefixed(timm, ls.namedParameters())
        }
        return prefixed("norm1", norm1.namedParameters()) + prefixed("attn", attn.namedParameters())
            + scale(ls1, "ls1", "gamma_1") + prefixed("norm2", norm2.namedParameters())
            + prefixed("mlp", mlp.namedParameters()) + scale(ls2, "ls2", "gamma_2")
    }

    /// (B, N, C) → (B, N, C)
    func callAsFunction(_ x: Tensor, rope: RopeTables?, prefix: Int) -> Tensor {
        // x + ls1(a) and h + ls2(m): at inference in the epilogues of proj and (a GELU Mlp's)
        // fc2, else one fused pass each (Tensor.residual); the same bits either way.
        let h = attn(norm1(x), rope: rope, prefix: prefix, residual: x, scale: ls1?.gamma)  // (B, N, C)
        return mlp(norm2(h), residual: h, scale: ls2?.gamma)  // (B, N, C)
    }
}
