import TensorCore

/// torch `F.interpolate(x, size, mode="bilinear", align_corners=False)` on a channel-last map,
/// differentiable with respect to the map, built on the engine's `gridSample` (align_corners
/// True, zero padding) so it needs no kernel of its own:
/// - output pixel o samples source coordinate s = (o + 0.5)·(in/out) − 0.5, clamped below at 0
///   (torch's `area_pixel_compute_source_index` for align_corners False);
/// - torch reads the neighbour above the last pixel as the last pixel itself, which equals
///   sampling exactly at in − 1, so s is also clamped above at in − 1 and the zero padding of
///   `gridSample` never comes into play;
/// - s maps to gridSample's [−1, 1] as 2·s/(in − 1) − 1 (0 when in = 1).
/// This is what mmseg's `resize` does to BNHead's logits (align_corners=False in both configs).
public enum BilinearResize {
    /// Sampling points (outH·outW, 2) as (x, y) for `gridSample`.
    public static func coordinates(inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int) -> Tensor {
        func axis(_ n: Int, _ m: Int) -> [Float] {
            (0..<m).map { o in
                let s = min(max((Double(o) + 0.5) * Double(n) / Double(m) - 0.5, 0), Double(n - 1))
                return n == 1 ? 0 : Float(2 * s / Double(n - 1) - 1)
            }
        }
        let xs = axis(inWidth, outWidth), ys = axis(inHeight, outHeight)
        var c = [Float](repeating: 0, count: outHeight * outWidth * 2)
        for i in 0..<outHeight {
            for j in 0..<outWidth {
                c[(i * outWidth + j) * 2] = xs[j]
                c[(i * outWidth + j) * 2 + 1] = ys[i]
            }
        }
        return Tensor(c, shape: [outHeight * outWidth, 2])
    }

    /// Resizes `map` (H, W, C) to (outH·outW, C).
    public static func resize(_ map: Tensor, height: Int, width: Int) -> Tensor {
        precondition(map.rank == 3, "BilinearResize: map must be (H, W, C), got \(map.shape)")
        if map.shape[0] == height && map.shape[1] == width { return map.reshape([height * width, map.shape[2]]) }
        let coords = coordinates(inHeight: map.shape[0], inWidth: map.shape[1], outHeight: height, outWidth: width)
        return Tensor.gridSample(map, coords)  // (outH·outW, C)
    }
}
