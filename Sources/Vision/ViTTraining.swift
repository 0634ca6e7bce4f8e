import Formats
import Foundation
import Settings
import TensorCore

// Fine-tuning the ViT itself (DVT stage 3, SRT self-distillation): which parameters train, a
// forward that records the graph, and the export as a timm state dict. Letters as in ViT.swift.

/// Which ViT parameters a fine-tuning run updates: the `finetune.thaw` choice (SRT's `thaw`
/// modes; its cases are documented in Settings.swift).
public typealias ThawMode = DVTSettings.Finetune.Thaw

extension ThawMode {
    /// Whether the parameter `name` of a `depth`-block ViT trains under this mode.
    public func trains(_ name: String, depth: Int) -> Bool {
        func inBlock(_ i: Int) -> Bool { i >= 0 && name.hasPrefix("blocks.\(i).") }
        let finalNorm = name == "norm.weight" || name == "norm.bias"
        switch self {
        case .all: return true
        case .bias: return name.contains("bias")
        case .last: return inBlock(depth - 1) || finalNorm
        case .last2: return inBlock(depth - 1) || inBlock(depth - 2) || finalNorm
        }
    }
}

extension VisionTransformer {
    /// Sets `requiresGrad` on every parameter by `mode` (all others frozen); returns the names
    /// that train, in `namedParameters` order.
    @discardableResult
    public func thaw(_ mode: ThawMode) -> [String] {
        var trained: [String] = []
        for (name, p) in namedParameters() {
            p.requiresGrad = mode.trains(name, depth: config.depth)
            if p.requiresGrad { trained.append(name) }
        }
        invalidatePositionCache()
        return trained
    }

    /// Freezes every parameter again (the inference default).
    public func freeze() {
        for (_, p) in namedParameters() { p.requiresGrad = false }
        invalidatePositionCache()
    }

    /// The features of block `layer` (after the final norm when `norm`), recording the graph
    /// back into the trainable parameters: the student's forward (main_distillation.py line 237,
    /// `get_intermediate_layers` with n=1, norm=True; SRT's `get_intermediate_layers(n=1)`,
    /// distill_utils.py line 88). With `checkpointBlocks`, each block's activations are
    /// recomputed in backward (timm `set_grad_checkpointing`, main_distillation.py line 152).
    public func trainingFeatures(
        _ images: Tensor, layer: Int, norm applyNorm: Bool = true, stride: Int? = nil,
        checkpointBlocks: Bool = false
    ) -> ViTFeatures {
        precondition(layer >= 0 && layer < config.depth, "layer \(layer) out of range 0..<\(config.depth) for \(config.name)")
        return forward(images, layers: [layer], norm: applyNorm, stride: stride, checkpointBlocks: checkpointBlocks)[layer]!
    }

    /// `pos_embed`'s patch rows resampled to (gh, gw) as two matrix products, so the gradient
    /// flows back into `pos_embed`: both torch bicubic resizes are separable (one pass per
    /// axis), and each pass is the 1-D resize matrix obtained by resizing identity bases with
    /// `config.positionResampling` (the same taps as the cached inference path).
    func differentiablePatchPositions(_ gh: Int, _ gw: Int) -> Tensor {
        let posEmbed = posEmbed!
        let c = config.embedDim, r = config.positionPrefixRows
        let rows = posEmbed.shape[1] - r
        let g0 = Int(Double(rows).squareRoot().rounded())
        precondition(g0 * g0 == rows, "pos_embed has \(rows) patch rows, not a square grid")
        var grid = posEmbed.reshape([r + rows, c]).slice(axis: 0, r..<(r + rows)).reshape([g0, g0, c])  // (G0, G0, C)
        // Both passes whenever the grid changes: a same-size pass is the identity for the
        // `bicubic` rules but not for `bicubic_offset`, whose scale is (g + 0.1) / G0.
        let resample = gh != g0 || gw != g0
        if resample {
            let ry = Resize.matrix(from: g0, to: gh, rule: config.positionResampling)  // (Gh, G0)
            grid = Tensor.matmul(ry, grid.reshape([g0, g0 * c])).reshape([gh, g0, c])  // (Gh, G0, C)
        }
        if resample {
            let rx = Resize.matrix(from: g0, to: gw, rule: config.positionResampling)  // (Gw, G0)
            let cols = grid.permute([0, 2, 1]).reshape([gh * c, g0])  // (Gh·C, G0)
            grid = Tensor.matmul(cols, rx, transposeB: true).reshape([gh, c, gw]).permute([0, 2, 1])  // (Gh, Gw, C)
        }
        return grid.reshape([gh * gw, c])  // (T, C)
    }

    /// The model as a timm state dict: every parameter under its timm name plus the loaded
    /// tensors the feature path ignores, so `timm.create_model(arch, num_classes=0,
    /// dynamic_img_size=True).load_state_dict(sd, strict=True)` accepts it.
    public func timmStateDict() -> [String: Tensor] {
        var out = passthroughTensors
        for (name, p) in namedParameters() { out[name] = p.detach() }
        return out
    }

    /// Writes `timmStateDict()` as safetensors, atomically, with `metadata` (provenance).
    public func exportTimm(to url: URL, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta["format"] = "pt"  // what safetensors.torch.save_file writes: timm reads it as a torch state dict
        meta["timm_arch"] = config.name
        try SafeTensors.write(timmStateDict(), metadata: meta, to: url)
    }
}
