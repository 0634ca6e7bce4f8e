// Rotary position embedding (RoPE) on a packed qkv projection, in timm's layout.
// B = batch, N = tokens, R = prefix tokens (not rotated), T = N − R rotated tokens,
// C = model width, H = heads, D = C / H head width. qkv is (B, N, 3C): q of head h is columns
// [h·D, (h+1)·D) of a token row, k is C + that, v is 2C + that (as `multiHeadAttention` reads it).

/// How the D columns of one head pair up under the rotation.
public enum RopeLayout: String, Sendable, Codable {
    /// Pairs (x0, x1), (x2, x3), …: timm `rot` (`pos_embed_sincos.py`, 1.0.31 line 433), used
    /// by EVA-02's `RotaryEmbeddingCat`.
    case interleaved
    /// Pairs (x_j, x_{j+D/2}): timm `rope_rotate_half` (line 439), used by DINOv3.
    case half
}

extension Tensor {
    /// Rotates q and k of every head of the non-prefix tokens, timm's `apply_rot_embed_cat`
    /// (`pos_embed_sincos.py` line 483) as `EvaAttention.forward` calls it on
    /// `q[:, :, npt:]` and `k[:, :, npt:]` (`eva.py` line 275); v and the prefix tokens pass through:
    /// ```
    /// x' = x ⊙ cos + rot(x) ⊙ sin
    /// interleaved: rot(x)_{2i} = −x_{2i+1},  rot(x)_{2i+1} = x_{2i}
    /// half:        rot(x)_j    = −x_{j+D/2}, rot(x)_{j+D/2} = x_j
    /// ```
    /// Backward (the tables are constants): each pair is rotated by an orthogonal 2×2 map, so
    /// the input gradient is the transposed map applied to the output gradient,
    /// `dx_a = g_a cos_a + g_b sin_b`, `dx_b = g_b cos_b − g_a sin_a` for the pair (a, b) with
    /// rot(x)_a = −x_b.
    /// - Paper: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding",
    ///   arXiv:2104.09864.
    /// - Parameters:
    ///   - qkv: (B, N, 3C) packed projections.
    ///   - sin, cos: (T, D) tables, already expanded to the `layout` (timm's `[sin | cos]`
    ///     halves of `rope.get_embed()`).
    ///   - heads: H; must divide C.
    ///   - prefixTokens: R leading tokens left unrotated.
    /// - Returns: (B, N, 3C).
    public static func rotaryEmbedding(
        qkv: Tensor, sin: Tensor, cos: Tensor, heads: Int, prefixTokens: Int,
        layout: RopeLayout
    ) -> Tensor {
        precondition(qkv.rank == 3 && qkv.shape[2] % 3 == 0, "rotaryEmbedding: qkv must be (B, N, 3C), got \(qkv.shape)")
        let b = qkv.shape[0], n = qkv.shape[1], c3 = qkv.shape[2], c = c3 / 3
        precondition(heads >= 1 && c % heads == 0, "rotaryEmbedding: \(heads) heads do not divide C = \(c)")
        let d = c / heads, t = n - prefixTokens
        precondition(d % 2 == 0, "rotaryEmbedding: head width \(d) must be even")
        precondition(
            prefixTokens >= 0 && t >= 0 && sin.shape == [t, d] && cos.shape == [t, d],
            "rotaryEmbedding: tables must be (T, D) = (\(t), \(d)) for \(n) tokens with \(prefixTokens) prefix, got sin \(sin.shape) cos \(cos.shape)"
        )
        let out = qkv.copy()  // (B, N, 3C); v and prefix rows stay as they are
        let src = qkv.ptr, dst = out.ptr, ps = sin.ptr, pc = cos.ptr
        Parallel.forEach(b * t) { row in
            let bi = row / t, ti = row % t
            let base = (bi * n + prefixTokens + ti) * c3
            let s = ps + ti * d, co = pc + ti * d
            for part in 0..<2 {  // q, then k
                for h in 0..<heads {
                    let o = base + part * c + h * d
                    rotate(src + o, dst + o, s, co, d, layout, transpose: false)
                }
            }
        }
        return out.record("rotaryEmbedding", [qkv]) { g in
            let gx = qkv.gradBuffer(), pg = g.ptr
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(d, 1))
            defer { scratch.deallocate() }
            // Rows not rotated (prefix tokens, all v columns) have the identity gradient.
            for bi in 0..<b {
                for ni in 0..<n {
                    let base = (bi * n + ni) * c3
                    let rotated = ni >= prefixTokens
                    for j in 0..<c3 where !(rotated && j < 2 * c) { gx[base + j] += pg[base + j] }
                    guard rotated else { continue }
                    let ti = ni - prefixTokens
                    for part in 0..<2 {
                        for h in 0..<heads {
                            let o = base + part * c + h * d
                            rotate(pg + o, scratch, ps + ti * d, pc + ti * d, d, layout, transpose: true)
                            for j in 0..<d { gx[o + j] += scratch[j] }
                        }
                    }
                }
            }
        }
    }

    /// y = x ⊙ cos + rot(x) ⊙ sin for one head vector of width d, or its transpose
    /// (the backward map) when `transpose`.
    @inline(__always)
    private static func rotate(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>,
        _ c: UnsafePointer<Float>, _ d: Int, _ layout: RopeLayout, transpose: Bool
    ) {
        // Pair (a, b) with rot(x)_a = −x_b and rot(x)_b = x_a.
        let pairs = d / 2
        for i in 0..<pairs {
            let a = layout == .interleaved ? 2 * i : i
            let bb = layout == .interleaved ? 2 * i + 1 : i + pairs
            let xa = x[a], xb = x[bb]
            if transpose {
                y[a] = xa * c[a] + xb * s[bb]
                y[bb] = xb * c[bb] - xa * s[a]
            } else {
                y[a] = xa * c[a] - xb * s[a]
                y[bb] = xb * c[bb] + xa * s[bb]
            }
        }
    }
}
