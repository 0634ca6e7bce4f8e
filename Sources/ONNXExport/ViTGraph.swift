import Foundation
import NN
import TensorCore
import Vision

// A timm VisionTransformer's feature path (Vision/ViT.swift `forward`) as ONNX nodes: ImageNet
// normalisation, the strided patch convolution, prefix tokens and the resampled position
// embedding, blocks 0...layer and the final norm, and the patch tokens as a (B, Gh, Gw, C) map.
// Families whose forward this does not cover yet are refused by `OnnxViTSupport.check`.

/// Which ViT families the exporter covers.
public enum OnnxViTSupport {
    /// Throws a clear error for an architecture the ONNX graph does not cover yet.
    public static func check(_ c: ViTConfig) throws {
        var missing: [String] = []
        if c.rope != nil { missing.append("rotary position embedding (RoPE: EVA-02, DINOv3)") }
        if !c.absolutePositionEmbedding && c.rope == nil { missing.append("no absolute position embedding") }
        if c.separateQKV { missing.append("separate q/k/v projections (EVA)") }
        if c.attentionNorm { missing.append("attention sub-LN (EVA scale_attn_inner)") }
        if c.mlp == .swiglu { missing.append("split SwiGLU with sub-LN (EVA)") }
        guard missing.isEmpty else {
            throw OnnxExportError(
                "\(c.name) cannot be exported to ONNX yet: \(missing.joined(separator: "; ")). "
                    + "Supported: timm VisionTransformer families with an absolute position embedding "
                    + "(DINO, DINOv2 with or without registers, DINOv2 giant, DeiT-III, MAE, CLIP, AugReg, SigLIP)")
        }
    }
}

extension OnnxGraphBuilder {
    /// Adds the ViT's weights for blocks 0...layer (named `prefix` + timm key) and its nodes on
    /// `image` (B, 3, H, W), RGB in [0, 1]; returns the patch tokens after block `layer`
    /// (with the final norm when `norm`) as (B, Gh, Gw, C).
    public mutating func vit(
        _ image: String, _ model: VisionTransformer, layer: Int, stride: Int?, norm applyNorm: Bool,
        prefix: String = "vit.model."
    ) throws -> String {
        let c = model.config
        try OnnxViTSupport.check(c)
        precondition(layer >= 0 && layer < c.depth, "layer \(layer) out of range 0..<\(c.depth)")
        let s = stride ?? c.patchSize
        let dim = c.embedDim, r = c.prefixTokens
        let params = Dictionary(model.namedParameters(), uniquingKeysWith: { first, _ in first })
        var names: [String: String] = [:]
        for (key, t) in model.namedParameters() {
            // Blocks after `layer` never reach the output: leave their weights out of the file.
            if key.hasPrefix("blocks."), let i = Int(key.dropFirst(7).prefix { $0 != "." }), i > layer { continue }
            names[key] = initializer(prefix + key, t)
        }
        let saved = scope
        defer { scope = saved }

        // (pixel/255 − mean) / std, as RGBImage.normalizedTensor.
        scope = "vit/normalize"
        let mean = constant("mean", floats: c.mean, dims: [1, 3, 1, 1])
        let std = constant("std", floats: c.std, dims: [1, 3, 1, 1])
        let x0 = op("Div", [op("Sub", [image, mean]), std])  // (B, 3, H, W)

        scope = "vit/patch_embed"
        var convInputs = [x0, names["patch_embed.proj.weight"]!]
        if let b = names["patch_embed.proj.bias"] { convInputs.append(b) }
        let conv = op("Conv", convInputs, [("kernel_shape", .ints([c.patchSize, c.patchSize])), ("strides", .ints([s, s]))])  // (B, C, Gh, Gw)
        let convShape = op("Shape", [conv])  // [B, C, Gh, Gw]
        let batch = op("Slice", [convShape, int64s([0]), int64s([1])])  // [B]
        let ghw = op("Slice", [convShape, int64s([2]), int64s([4])])  // [Gh, Gw]
        var x = op("Transpose", [op("Reshape", [conv, int64s([0, dim, -1])])], [("perm", .ints([0, 2, 1]))])  // (B, T, C)

        // Position embedding of the patch grid, resampled from the square pretraining grid G0 by
        // the model's rule (ViT.patchPositions): timm's antialiased bicubic, or transformers' plain one.
        scope = "vit/pos_embed"
        var patchPos: String?
        var prefixPos: String?
        if let pos = names["pos_embed"], let table = model.posEmbed {
            let pr = c.positionPrefixRows
            let rows = table.shape[1] - pr
            let g0 = Int(Double(rows).squareRoot().rounded())
            guard g0 * g0 == rows else {
                throw OnnxExportError("\(c.name): pos_embed has \(rows) patch rows, not a square grid")
            }
            let patchRows = op("Slice", [pos, int64s([pr]), int64s([pr + rows]), int64s([1])])  // (1, G0², C)
            let grid = op("Reshape", [patchRows, int64s([1, g0, g0, dim])])
            let nchw = op("Transpose", [grid], [("perm", .ints([0, 3, 1, 2]))])  // (1, C, G0, G0)
            let sizes = op("Concat", [int64s([1, dim]), ghw], [("axis", .int(0))])
            let resized: String  // (1, C, Gh, Gw)
            switch c.positionResampling {
            case .bicubicAntialias: resized = bicubicAntialiased(nchw, sizes: sizes)
            case .bicubic: resized = bicubicPlain(nchw, sizes: sizes)
            case .bicubicOffset:
                throw OnnxExportError(
                    "\(c.name): the bicubic_offset position resampling (scale factors (g + 0.1) / g0) is not exported; export with --pos-embed-resample bicubic or bicubic_antialias"
                )
            }
            patchPos = op("Reshape", [op("Transpose", [resized], [("perm", .ints([0, 2, 3, 1]))]), int64s([1, -1, dim])])  // (1, T, C)
            if pr > 0 { prefixPos = op("Slice", [pos, int64s([0]), int64s([pr]), int64s([1])]) }  // (1, R, C)
        }

        scope = "vit/tokens"
        var prefixTokens: [String] = []
        if let cls = names["cls_token"] {
            prefixTokens.append(op("Expand", [cls, op("Concat", [batch, int64s([1, dim])], [("axis", .int(0))])]))  // (B, 1, C)
        }
        if let reg = names["reg_token"] {
            let n = c.registerTokens
            prefixTokens.append(op("Expand", [reg, op("Concat", [batch, int64s([n, dim])], [("axis", .int(0))])]))  // (B, R_reg, C)
        }
        if let patchPos, !c.noEmbedClass {
            // timm _pos_embed without no_embed_class: prefix tokens joined first, then the whole table added.
            if !prefixTokens.isEmpty { x = op("Concat", prefixTokens + [x], [("axis", .int(1))]) }
            let table = prefixPos.map { op("Concat", [$0, patchPos], [("axis", .int(1))]) } ?? patchPos
            x = op("Add", [x, table])
        } else {
            if let patchPos { x = op("Add", [x, patchPos]) }
            if !prefixTokens.isEmpty { x = op("Concat", prefixTokens + [x], [("axis", .int(1))]) }  // (B, R + T, C)
        }
        if let w = names["norm_pre.weight"], let b = names["norm_pre.bias"] {
            scope = "vit/norm_pre"
            x = layerNorm(x, weight: w, bias: b, eps: c.normEps)
        }

        let mlp: OnnxBlockMlp
        if c.mlp == .swigluPacked {
            // The packed fc1 is twice fc2's input width; the checkpoint decides, not mlp_ratio.
            mlp = .swigluPacked(hidden: params["blocks.0.mlp.fc2.weight"]?.shape[1] ?? c.mlpHiddenWidth)
        } else {
            mlp = .mlp(c.activation)
        }
        let spec = OnnxBlockSpec(dim: dim, heads: c.heads, normEps: c.normEps, mlp: mlp)
        for i in 0...layer {
            scope = "vit/blocks.\(i)"
            let p = "blocks.\(i)."
            x = transformerBlock(x, spec: spec) { key in
                // timm's Eva names layer scale gamma_1/gamma_2; the graph is the same.
                if c.evaLayerScaleKeys, key == "ls1.gamma" { return names[p + "gamma_1"] }
                if c.evaLayerScaleKeys, key == "ls2.gamma" { return names[p + "gamma_2"] }
                return names[p + key]
            }
        }

        scope = "vit/norm"
        if applyNorm { x = layerNorm(x, weight: names["norm.weight"]!, bias: names["norm.bias"]!, eps: c.normEps) }
        // The patch tokens are the last T; reshape to the (B, Gh, Gw, C) map.
        let patches = r == 0 ? x : op("Slice", [x, int64s([r]), int64s([Int(Int64.max)]), int64s([1])])  // (B, T, C)
        let mapShape = op("Concat", [batch, ghw, int64s([dim])], [("axis", .int(0))])
        return op("Reshape", [patches, mapShape])  // (B, Gh, Gw, C)
    }
}
