import TensorCore
import TestSupport
import Testing

/// The rotary-embedding op against timm's definition written out per element, and its gradient.
@Suite("Rotary position embedding")
struct RopeTests {
    /// timm `apply_rot_embed_cat` on q and k of tokens ≥ prefix, element by element:
    /// x·cos + rot(x)·sin with rot = `rot` (interleaved) or `rope_rotate_half` (half).
    static func reference(_ qkv: Tensor, _ sin: Tensor, _ cos: Tensor, heads: Int, prefix: Int, layout: RopeLayout) -> [Float] {
        let b = qkv.shape[0], n = qkv.shape[1], c3 = qkv.shape[2], c = c3 / 3, d = c / heads
        var out = qkv.scalars
        let x = qkv.scalars, s = sin.scalars, co = cos.scalars
        for bi in 0..<b {
            for t in prefix..<n {
                for part in 0..<2 {
                    for h in 0..<heads {
                        let o = (bi * n + t) * c3 + part * c + h * d, r = (t - prefix) * d
                        for j in 0..<d {
                            let rot: Float
                            switch layout {
                            case .interleaved: rot = j % 2 == 0 ? -x[o + j + 1] : x[o + j - 1]
                            case .half: rot = j < d / 2 ? -x[o + j + d / 2] : x[o + j - d / 2]
                            }
                            out[o + j] = x[o + j] * co[r + j] + rot * s[r + j]
                        }
                    }
                }
            }
        }
        return out
    }

    @Test("forward equals timm's formula; prefix tokens and v pass through", arguments: [RopeLayout.interleaved, .half])
    func forward(_ layout: RopeLayout) {
        let (b, n, heads, d, prefix) = (2, 7, 3, 8, 2)
        let qkv = randn([b, n, 3 * heads * d], seed: 1, requiresGrad: false)
        let sin = randn([n - prefix, d], seed: 2, requiresGrad: false), cos = randn([n - prefix, d], seed: 3, requiresGrad: false)
        let y = Tensor.rotaryEmbedding(qkv: qkv, sin: sin, cos: cos, heads: heads, prefixTokens: prefix, layout: layout)
        expectClose(
            y.scalars, Self.reference(qkv, sin, cos, heads: heads, prefix: prefix, layout: layout),
            rtol: 1e-6, atol: 1e-6, "rope \(layout)")
    }

    @Test("gradient matches finite differences", arguments: [RopeLayout.interleaved, .half])
    func gradient(_ layout: RopeLayout) {
        let (heads, d, prefix, n) = (2, 4, 1, 4)
        let qkv = randn([2, n, 3 * heads * d], seed: 4)
        let sin = randn([n - prefix, d], seed: 5, requiresGrad: false), cos = randn([n - prefix, d], seed: 6, requiresGrad: false)
        gradCheck("rotaryEmbedding \(layout)", [qkv]) { x in
            Tensor.rotaryEmbedding(qkv: x[0], sin: sin, cos: cos, heads: heads, prefixTokens: prefix, layout: layout)
        }
    }
}
