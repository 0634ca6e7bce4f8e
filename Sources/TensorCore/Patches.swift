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

    /// The tensor mirrored along its last axis: out[..., x] = self[..., W − 1 − x]. Backward
    /// mirrors the gradient back.
    public func flippedLastAxis() -> Tensor {
        precondition(rank >= 1, "flippedLastAxis needs a rank ≥ 1 tensor, got \(shape)")
        let out = Tensor.uninitialized(shape)
        Tensor.mirrorRows(ptr, into: out.ptr, count: count, width: shape[rank - 1])
        return out.record("flippedLastAxis", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr, w = self.shape[self.rank - 1]
            let rows = w == 0 ? 0 : self.count / w
            for r in 0..<rows { for x in 0..<w { gx[r * w + x] += pg[r * w + w - 1 - x] } }
        }
    }

    static func mirrorRows(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int, width w: Int) {
        guard w > 0 else { return }
        for r in 0..<(count / w) { for x in 0..<w { dst[r * w + x] = src[r * w + w - 1 - x] } }
    }
}
