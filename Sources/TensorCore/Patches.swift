// Image-shaped data movement: the ViT's patch gather (im2col) and horizontal flips of views.
// Pure copies, so they are exact; they live here because they are per-element loops over
// tensor memory.

extension Tensor {
    /// im2col of strided square patches: (B, C, H, W) → (B·Gh·Gw, C·P·P), row (b, gy, gx) holding
    /// patch (gy·stride, gx·stride) with columns in (channel, ky, kx) order, the order of a conv
    /// weight (D, C, P, P) flattened. Gh = (H − P) / stride + 1, likewise Gw. Not recorded for
    /// autodiff: it is applied to input images only.
    public func patchColumns(patch p: Int, stride: Int) -> Tensor {
        precondition(rank == 4, "patchColumns needs (B, C, H, W), got \(shape)")
        let (b, ch, h, w) = (shape[0], shape[1], shape[2], shape[3])
        precondition(p > 0 && stride > 0 && h >= p && w >= p, "patchColumns: patch \(p) stride \(stride) on \(h)x\(w)")
        let gh = (h - p) / stride + 1, gw = (w - p) / stride + 1, k = ch * p * p
        let cols = Tensor.uninitialized([b * gh * gw, k])  // (B·Gh·Gw, C·P·P)
        let src = ptr, dst = cols.ptr
        Parallel.forEach(b * gh) { row in
            let bi = row / gh, gy = row % gh
            for gx in 0..<gw {
                let o = dst + ((bi * gh + gy) * gw + gx) * k
                for c in 0..<ch {
                    for ky in 0..<p {
                        let s = src + ((bi * ch + c) * h + gy * stride + ky) * w + gx * stride
                        (o + (c * p + ky) * p).update(from: s, count: p)
                    }
                }
            }
        }
        return cols
    }

    /// The tensor mirrored along `axis` (negative counts from the end): out[…, i, …] =
    /// self[…, N − 1 − i, …] with N = shape[axis]; the one flip of the toolkit (image views,
    /// fine-tuning inputs, probe feature maps). Backward mirrors the gradient back.
    public func flipped(axis: Int) -> Tensor {
        precondition(rank >= 1, "flipped(axis:) needs a rank ≥ 1 tensor, got \(shape)")
        let a = axis < 0 ? axis + rank : axis
        precondition((0..<rank).contains(a), "flipped(axis: \(axis)) on a rank-\(rank) tensor \(shape)")
        let n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        let out = Tensor.uninitialized(shape)
        Tensor.mirror(ptr, into: out.ptr, count: count, length: n, inner: inner, accumulate: false)
        return out.record("flipped", [self]) { g in
            Tensor.mirror(g.ptr, into: self.gradBuffer(), count: self.count, length: n, inner: inner, accumulate: true)
        }
    }

    /// dst[o, i, k] (=, or += with `accumulate`) src[o, n − 1 − i, k] over blocks of n · inner.
    static func mirror(
        _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int, length n: Int,
        inner: Int, accumulate: Bool
    ) {
        let block = n * inner
        guard block > 0 else { return }
        for o in 0..<(count / block) {
            for i in 0..<n {
                let d = o * block + i * inner, s = o * block + (n - 1 - i) * inner
                if accumulate { for k in 0..<inner { dst[d + k] += src[s + k] } } else { for k in 0..<inner { dst[d + k] = src[s + k] } }
            }
        }
    }
}
