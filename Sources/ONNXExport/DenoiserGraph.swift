import DVT
import Foundation
import NN
import TensorCore
import Vision

// DVT's generalizable denoiser (Denoiser.swift) as ONNX nodes, for any token grid:
//   tokens = reshape(x, (B, H·W, C)) + resample(pos_embed, (H, W))
//   y      = reshape(Blocks(tokens), (B, H, W, C))
// The position embedding is resampled in the graph from the input's own (H, W), with the ONNX
// Resize that equals timm's `resample_abs_pos_embed` (bicubic, antialias, align_corners=False);
// at the native grid it is the identity (every tap weight is 0 or 1).

/// How the exports resample position embeddings, for their metadata.
public enum OnnxResampling {
    /// The denoiser's rule (and timm's): antialiased bicubic.
    public static let antialiased =
        "timm resample_abs_pos_embed: torch F.interpolate(mode='bicubic', align_corners=False, antialias=True) "
        + "on the (h, w) grid, computed in the graph by ONNX Resize(mode='cubic', cubic_coeff_a=-0.5, antialias=1, "
        + "exclude_outside=1, coordinate_transformation_mode='half_pixel') from the input's grid"
    /// transformers' rule: plain torch bicubic.
    public static let plain =
        "transformers interpolate_pos_encoding: torch F.interpolate(size=..., mode='bicubic', align_corners=False) "
        + "on the (h, w) grid, computed in the graph by ONNX Resize(mode='cubic', cubic_coeff_a=-0.75, antialias=0, "
        + "exclude_outside=0, coordinate_transformation_mode='half_pixel') from the input's grid"

    public static func describe(_ rule: PositionResampling) -> String {
        switch rule {
        case .bicubicAntialias: return antialiased
        case .bicubic: return plain
        case .bicubicOffset:
            return "torch F.interpolate(scale_factor=((h + 0.1) / h0, (w + 0.1) / w0), mode='bicubic', align_corners=False): not exported"
        }
    }
}

extension OnnxGraphBuilder {
    /// Adds the denoiser's weights (named as in `Denoiser.namedParameters()`, the official
    /// layout, behind `prefix`) and its nodes on `x` (B, H, W, C); returns the (B, H, W, C) output.
    public mutating func denoiser(_ x: String, _ d: Denoiser, prefix: String = "") -> String {
        let cfg = d.config
        var names: [String: String] = [:]
        for (key, t) in d.namedParameters() { names[key] = initializer(prefix + key, t) }
        let saved = scope
        defer { scope = saved }
        scope = "denoiser"
        let shape = op("Shape", [x])  // [B, H, W, C]
        var tokens = op("Reshape", [x, int64s([0, -1, cfg.dim])])  // (B, N, C)
        if let pos = names["pos_embed"] {
            scope = "denoiser/pos_embed"
            let hw = op("Slice", [shape, int64s([1]), int64s([3])])  // [H, W]
            let grid = op("Reshape", [pos, int64s([1, cfg.gridHeight, cfg.gridWidth, cfg.dim])])  // (1, h, w, C)
            let nchw = op("Transpose", [grid], [("perm", .ints([0, 3, 1, 2]))])  // (1, C, h, w)
            let sizes = op("Concat", [int64s([1, cfg.dim]), hw], [("axis", .int(0))])  // [1, C, H, W]
            let resized = bicubicAntialiased(nchw, sizes: sizes)  // (1, C, H, W)
            let nhwc = op("Transpose", [resized], [("perm", .ints([0, 2, 3, 1]))])  // (1, H, W, C)
            tokens = op("Add", [tokens, op("Reshape", [nhwc, int64s([1, -1, cfg.dim])])])  // (B, N, C)
        }
        let spec = OnnxBlockSpec(dim: cfg.dim, heads: cfg.numHeads, normEps: 1e-6, mlp: .mlp(.gelu))
        for i in 0..<cfg.numBlocks {
            let blockPrefix = cfg.numBlocks == 1 ? "denoiser." : "denoiser.\(i)."
            scope = cfg.numBlocks == 1 ? "denoiser" : "denoiser/\(i)"
            tokens = transformerBlock(tokens, spec: spec) { names[blockPrefix + $0] }
        }
        scope = "denoiser"
        return op("Reshape", [tokens, shape])  // (B, H, W, C)
    }
}
