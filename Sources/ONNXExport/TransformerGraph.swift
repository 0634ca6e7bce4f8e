import Foundation
import NN
import TensorCore

// The timm transformer block as ONNX nodes: the one structure shared by the denoiser's block(s)
// and the ViT's blocks (timm/models/vision_transformer.py `Block` and `Attention`; our NN.Block
// and Vision.ViTBlock compute the same). B batch, N tokens, C channels, h heads, d = C/h.

/// The MLP of a block.
public enum OnnxBlockMlp: Sendable, Equatable {
    /// timm `Mlp`: fc1 → activation → fc2.
    case mlp(Activation)
    /// timm `SwiGLUPacked`: fc1 (2H wide), SiLU(first half) · second half, fc2 (DINOv2 giant).
    case swigluPacked(hidden: Int)
}

/// What a block needs besides its weights.
public struct OnnxBlockSpec: Sendable {
    public var dim: Int
    public var heads: Int
    public var normEps: Float
    public var mlp: OnnxBlockMlp
}

extension OnnxGraphBuilder {
    /// Multi-head self-attention of timm `Attention` on (B, N, C): fused qkv (bias optional),
    /// softmax((q·d^-½)·kᵀ)·v per head, heads concatenated, `proj`. `w(key)` names the
    /// initializer of a block-relative key ("attn.qkv.weight"), nil when the block has none.
    mutating func attention(_ x: String, spec: OnnxBlockSpec, _ w: (String) -> String?) -> String {
        let c = spec.dim, h = spec.heads, d = c / h
        let qkv = linear(x, weight: w("attn.qkv.weight")!, bias: w("attn.qkv.bias"))  // (B, N, 3C)
        // timm: qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4); Reshape's 0 copies B and N.
        let split = op("Reshape", [qkv, int64s([0, 0, 3, h, d])])  // (B, N, 3, h, d)
        let heads = op("Transpose", [split], [("perm", .ints([2, 0, 3, 1, 4]))])  // (3, B, h, N, d)
        let q = op("Gather", [heads, int64s([0], scalar: true)], [("axis", .int(0))])  // (B, h, N, d)
        let k = op("Gather", [heads, int64s([1], scalar: true)], [("axis", .int(0))])
        let v = op("Gather", [heads, int64s([2], scalar: true)], [("axis", .int(0))])
        let qs = op("Mul", [q, constant("attn_scale", floats: [1 / Float(d).squareRoot()], dims: [])])
        let kt = op("Transpose", [k], [("perm", .ints([0, 1, 3, 2]))])  // (B, h, d, N)
        let scores = op("MatMul", [qs, kt])  // (B, h, N, N)
        let p = op("Softmax", [scores], [("axis", .int(-1))])
        let o = op("MatMul", [p, v])  // (B, h, N, d)
        let merged = op("Reshape", [op("Transpose", [o], [("perm", .ints([0, 2, 1, 3]))]), int64s([0, 0, c])])  // (B, N, C)
        return linear(merged, weight: w("attn.proj.weight")!, bias: w("attn.proj.bias"))
    }

    /// The block's MLP on (B, N, C).
    mutating func mlp(_ x: String, spec: OnnxBlockSpec, _ w: (String) -> String?) -> String {
        let hidden = linear(x, weight: w("mlp.fc1.weight")!, bias: w("mlp.fc1.bias"))
        let act: String
        switch spec.mlp {
        case .mlp(.gelu): act = gelu(hidden)
        case .mlp(.quickGelu): act = sigmoidGate(hidden, k: 1.702)
        case .mlp(.geluTanh): act = geluTanh(hidden)
        case .mlp(.relu): act = op("Relu", [hidden])
        case .swigluPacked(let width):
            // timm SwiGLUPacked: x1, x2 = fc1(x).chunk(2, dim=-1); silu(x1) * x2.
            let halves = node("Split", [hidden, int64s([width, width])], outputs: 2, [("axis", .int(-1))])
            act = op("Mul", [sigmoidGate(halves[0], k: 1), halves[1]])
        }
        return linear(act, weight: w("mlp.fc2.weight")!, bias: w("mlp.fc2.bias"))
    }

    /// A pre-norm timm `Block` on (B, N, C): x + ls1·attn(norm1(x)), then + ls2·mlp(norm2(·)).
    /// Layer scale is applied when `w` names `ls1.gamma` / `ls2.gamma`.
    public mutating func transformerBlock(_ x: String, spec: OnnxBlockSpec, _ w: (String) -> String?) -> String {
        let saved = scope
        defer { scope = saved }
        let base = scope
        func sub(_ s: String) -> String { base.isEmpty ? s : "\(base)/\(s)" }
        scope = sub("attn")
        var a = attention(layerNorm(x, weight: w("norm1.weight")!, bias: w("norm1.bias")!, eps: spec.normEps), spec: spec, w)
        if let g = w("ls1.gamma") { a = op("Mul", [a, g]) }
        let h = op("Add", [x, a])  // (B, N, C)
        scope = sub("mlp")
        var m = mlp(layerNorm(h, weight: w("norm2.weight")!, bias: w("norm2.bias")!, eps: spec.normEps), spec: spec, w)
        if let g = w("ls2.gamma") { m = op("Mul", [m, g]) }
        return op("Add", [h, m])  // (B, N, C)
    }
}
