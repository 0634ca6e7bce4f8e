import Formats
import Foundation
import NN
import TensorCore

// A timm VisionTransformer, inference path. Letters: B batch, C channels, P patch size,
// S patch stride, Gh × Gw token grid, T = Gh·Gw patch tokens, R prefix tokens (cls + registers).

/// Dense features of one ViT layer for a batch of images.
public struct ViTFeatures {
    /// (B, Gh, Gw, C) patch-token features.
    public var patch: Tensor
    /// (B, R, C) prefix tokens (cls first, then registers), same normalisation as `patch`;
    /// (B, 0, C) for a model without prefix tokens (SigLIP).
    public var prefix: Tensor
}

/// A timm `VisionTransformer`, or one of timm's `Eva` ViTs (EVA-02, DINOv3), with timm's
/// state-dict names, so a timm safetensors checkpoint loads by name. One class for every family:
/// what differs is in `ViTConfig` (see ViTFamilies.swift). Forward runs without recording a graph.
public final class VisionTransformer: Module {
    public let config: ViTConfig
    /// `patch_embed.proj.weight` (C, 3, P, P) and `.bias` (C) — a strided convolution.
    public let patchWeight: Tensor
    public let patchBias: Tensor?
    public let clsToken: Tensor?  // (1, 1, C)
    public let regToken: Tensor?  // (1, R_reg, C)
    public let posEmbed: Tensor?  // (1, prefixRows + G0², C); nil for RoPE-only models (DINOv3)
    public let normPre: LayerNorm?
    let blocks: [ViTBlock]
    public let norm: LayerNorm
    /// Set when the weights are random (`--random-init`): every output must say so.
    public private(set) var randomInitSeed: UInt64?
    /// Operand precision of the forward's matrix products (`precision`, `--precision`): bf16
    /// rounds the operands of every linear and attention product, accumulating in fp32, and
    /// leaves everything else fp32 (torch.autocast on a CPU). `features` binds it.
    public var precision: Precision = .fp32

    /// Checkpoint tensors the feature path ignores (`isIgnoredKey`, e.g. SigLIP's `attn_pool.*`),
    /// kept as loaded so an exported timm state dict still loads with strict=True.
    public internal(set) var passthroughTensors: [String: Tensor] = [:]

    /// Where the weights came from ("timm checkpoint", "transformers dinov2", …): what the
    /// `auto` position resampling follows.
    public internal(set) var weightsOrigin = "random init"
    /// "auto" (the rule of `weightsOrigin`) or "config" (`pos_embed_resample` set).
    public internal(set) var positionResamplingChosenBy = "auto"
    /// The transformers description when the weights came from a transformers snapshot.
    public internal(set) var transformers: TransformersModel?

    private var posCache: [String: Tensor] = [:]
    private var ropeCache: [String: RopeTables] = [:]
    private let posCacheLock = NSLock()

    /// A model with seeded random weights (timm-like init: truncated normal σ 0.02 for weights
    /// and embeddings, zero biases, unit norms). For demos and tests only.
    public init(config: ViTConfig, seed: UInt64) {
        self.config = config
        var rng = RandomGenerator(seed: seed)
        let c = config.embedDim, p = config.patchSize
        patchWeight = Tensor.truncatedNormal([c, 3, p, p], std: 0.02, rng: &rng)
        patchBias = config.preNorm ? nil : Tensor(zeros: [c])
        clsToken = config.classToken ? Tensor.truncatedNormal([1, 1, c], std: 0.02, rng: &rng) : nil
        regToken = config.registerTokens > 0 ? Tensor.truncatedNormal([1, config.registerTokens, c], std: 0.02, rng: &rng) : nil
        let g0 = config.pretrainGrid
        posEmbed =
            config.absolutePositionEmbedding
            ? Tensor.truncatedNormal([1, config.positionPrefixRows + g0 * g0, c], std: 0.02, rng: &rng) : nil
        normPre = config.preNorm ? LayerNorm(c, eps: config.normEps) : nil
        // A random network with timm's 1e-5 layer-scale init would be the patch embedding plus
        // noise; 0.1 keeps the blocks (and their mixing of positions) visible in the features.
        blocks = (0..<config.depth).map { _ in ViTBlock(config, layerScale: config.layerScale ? 0.1 : nil, rng: &rng) }
        norm = LayerNorm(c, eps: config.normEps)
        randomInitSeed = seed
        for (_, t) in namedParameters() { t.requiresGrad = false }
    }

    /// Loads a timm checkpoint: safetensors, or a torch.save .pth (format from the magic bytes;
    /// DINOv2 hub names mapped to timm's, see `TimmCheckpointNames`). Classifier heads and other
    /// keys the feature path never reads (`head.*`, `fc_norm.*`, `mask_token`, …) are ignored;
    /// every other missing, unexpected or mis-shaped tensor is reported, all in one error.
    public convenience init(config: ViTConfig, weights url: URL) throws {
        if try WeightFiles.format(of: url) == .onnx {
            try self.init(onnx: url, preferred: config)
            return
        }
        let raw = try WeightFiles.load(url, stateDict: TimmCheckpointNames.unwrap, keep: { !$0.hasPrefix("head.") }).tensors
        let all = try TimmCheckpointNames.fromDINOv2Hub(TimmCheckpointNames.fromDVTWrapper(raw))
        let dict = all.filter { !VisionTransformer.isIgnoredKey($0.key) }
        try self.init(config: config, stateDict: dict, source: url.path)
        passthroughTensors = all.filter { VisionTransformer.isIgnoredKey($0.key) }
    }

    /// A model from a timm state dict already in memory (keys as timm names them, ignored keys
    /// already dropped); `source` names the file in errors.
    public convenience init(config: ViTConfig, stateDict dict: [String: Tensor], source: String) throws {
        var config = config
        // The MLP width comes from the weights, never from mlp_ratio: timm's own ratios do not
        // always reproduce it (ViT-g's 5.33334, EVA's 8/3 after int()).
        if let fc2 = dict["blocks.0.mlp.fc2.weight"], fc2.rank == 2 { config.mlpHidden = fc2.shape[1] }
        self.init(config: config, seed: 0)
        try load(stateDict: dict, strict: true, source: source)
        randomInitSeed = nil
        posCache.removeAll()
        ropeCache.removeAll()
    }

    /// Checkpoint keys with no role in feature extraction.
    public static func isIgnoredKey(_ key: String) -> Bool {
        key.hasPrefix("head.") || key.hasPrefix("fc_norm.") || key.hasPrefix("attn_pool.") || key == "mask_token"
            || key.hasPrefix("head_drop")
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        if let clsToken { out.append(("cls_token", clsToken)) }
        if let regToken { out.append(("reg_token", regToken)) }
        if let posEmbed { out.append(("pos_embed", posEmbed)) }
        out.append(("patch_embed.proj.weight", patchWeight))
        if let patchBias { out.append(("patch_embed.proj.bias", patchBias)) }
        if let normPre { out += prefixed("norm_pre", normPre.namedParameters()) }
        for (i, b) in blocks.enumerated() { out += prefixed("blocks.\(i)", b.namedParameters()) }
        out += prefixed("norm", norm.namedParameters())
        return out
    }

    /// Token grid for an input size: (H − P) / S + 1 per side (DVT's overlapping `stride`).
    public func grid(height: Int, width: Int, stride: Int? = nil) -> (Int, Int) {
        let p = config.patchSize, s = stride ?? p
        return ((height - p) / s + 1, (width - p) / s + 1)
    }

    /// Patch-token position embedding resampled to a grid from the square pretraining grid,
    /// by `config.positionResampling` (timm's `resample_abs_pos_embed` by default; the rule of
    /// the weights' own framework when they come from transformers). Cached.
    func patchPositions(_ gh: Int, _ gw: Int) -> Tensor? {
        guard let posEmbed else { return nil }
        // Fine-tuning: a resample that records the graph into `pos_embed` (ViTTraining.swift).
        if isGradEnabled && posEmbed.requiresGrad { return differentiablePatchPositions(gh, gw) }
        let key = "\(gh)x\(gw)"
        posCacheLock.lock()
        defer { posCacheLock.unlock() }
        if let hit = posCache[key] { return hit }
        let c = config.embedDim, r = config.positionPrefixRows
        let rows = posEmbed.shape[1] - r
        let g0 = Int(Double(rows).squareRoot().rounded())
        precondition(g0 * g0 == rows, "pos_embed has \(rows) patch rows, not a square grid")
        let patchPart = posEmbed.reshape([r + rows, c]).slice(axis: 0, r..<(r + rows)).reshape([g0, g0, c])  // (G0, G0, C)
        let resized =
            (g0 == gh && g0 == gw)
            ? patchPart
            : config.positionResampling.resize(patchPart, height: gh, width: gw, layout: .hwc)  // (Gh, Gw, C)
        let out = resized.reshape([gh * gw, c])  // (T, C)
        posCache[key] = out
        return out
    }

    /// Drops the resampled position embeddings cached from `pos_embed`: call after the weights
    /// change (fine-tuning), so later features use the new values.
    public func invalidatePositionCache() {
        posCacheLock.lock()
        defer { posCacheLock.unlock() }
        posCache.removeAll()
    }

    /// RoPE tables for a token grid, computed from the grid itself (timm `rope.get_embed(shape=
    /// (H, W))` in `Eva._pos_embed`, eva.py line 976), so every view, crop or shifted copy gets
    /// the positions of its own grid. Cached per grid; nil without RoPE.
    func ropeTables(_ gh: Int, _ gw: Int) -> RopeTables? {
        guard let rope = config.rope else { return nil }
        let key = "\(gh)x\(gw)"
        posCacheLock.lock()
        defer { posCacheLock.unlock() }
        if let hit = ropeCache[key] { return hit }
        let (sin, cos) = rope.tables(gridHeight: gh, gridWidth: gw, headDim: config.headDim)
        let out = RopeTables(sin: sin, cos: cos, layout: rope.layout)
        ropeCache[key] = out
        return out
    }

    /// Strided patch embedding as im2col + one sgemm: (B, 3, H, W) → (B, T, C).
    func embedPatches(_ images: Tensor, stride: Int) -> (Tensor, Int, Int) {
        precondition(images.rank == 4 && images.shape[1] == 3, "ViT input must be (B, 3, H, W), got \(images.shape)")
        let b = images.shape[0], h = images.shape[2], w = images.shape[3]
        let p = config.patchSize, c = config.embedDim
        precondition(h >= p && w >= p, "input \(h)x\(w) is smaller than the \(p)-pixel patch")
        let (gh, gw) = grid(height: h, width: w, stride: stride)
        let k = 3 * p * p
        // Column order (channel, ky, kx) matches the conv weight (C, 3, P, P) flattened.
        let cols = images.patchColumns(patch: p, stride: stride)  // (B·T, 3·P·P)
        precondition(cols.shape[0] == b * gh * gw, "patch grid \(cols.shape[0]) != \(b)·\(gh)·\(gw)")
        let tokens = Tensor.linear(cols, patchWeight.reshape([c, k]), patchBias)  // (B·T, C)
        return (tokens.reshape([b, gh * gw, c]), gh, gw)
    }

    /// Features after blocks `layers` (0-based block indices, as timm's `forward_intermediates`
    /// indices), with the final norm applied when `norm` is true (DVT uses true).
    ///
    /// - Parameters:
    ///   - images: (B, 3, H, W), already normalised with `config.mean`/`config.std`.
    ///   - stride: patch stride (DVT's `stride`); default the patch size.
    public func features(_ images: Tensor, layers: [Int], norm applyNorm: Bool = true, stride: Int? = nil) -> [Int: ViTFeatures] {
        for l in layers {
            precondition(l >= 0 && l < config.depth, "layer \(l) out of range 0..<\(config.depth) for \(config.name)")
        }
        return withNoGrad { forward(images, layers: layers, norm: applyNorm, stride: stride, checkpointBlocks: false) }
    }

    /// The forward pass behind `features`, recording the graph when grad mode is on and some
    /// parameter requires a gradient (`trainingFeatures`, ViTTraining.swift). With
    /// `checkpointBlocks`, each block's activations are recomputed in backward instead of kept.
    func forward(_ images: Tensor, layers: [Int], norm applyNorm: Bool, stride: Int?, checkpointBlocks: Bool) -> [Int: ViTFeatures] {
        let s = stride ?? config.patchSize
        precondition(s >= 1 && s <= config.patchSize, "stride \(s) must be in 1...\(config.patchSize)")
        // The model's matmul precision, bound task-locally (fp32 or bf16, docs/precision.md).
        return precision.run {
            let b = images.shape[0], c = config.embedDim
            var (x, gh, gw) = embedPatches(images, stride: s)  // (B, T, C)
            let t = gh * gw
            let pos = patchPositions(gh, gw)  // (T, C) or nil
            var prefix: [Tensor] = []
            if let clsToken { prefix.append(clsToken.broadcast(to: [b, 1, c])) }  // (B, 1, C)
            if let regToken { prefix.append(regToken.broadcast(to: [b, config.registerTokens, c])) }
            if let pos, let posEmbed, !config.noEmbedClass {
                x = Tensor.concat(prefix + [x], axis: 1)
                let r = config.positionPrefixRows
                let prefixPos = posEmbed.reshape([posEmbed.shape[1], c]).slice(axis: 0, 0..<r)  // (R, C)
                x = x + Tensor.concat([prefixPos, pos], axis: 0)
            } else {
                if let pos { x = x + pos }
                if !prefix.isEmpty { x = Tensor.concat(prefix + [x], axis: 1) }  // (B, R + T, C)
            }
            if let normPre { x = normPre(x) }
            let r = config.prefixTokens
            let rope = ropeTables(gh, gw)
            var out: [Int: ViTFeatures] = [:]
            let last = layers.max() ?? -1
            for i in 0...max(last, 0) where i <= last {
                if checkpointBlocks {
                    let block = blocks[i]
                    x = Tensor.checkpoint(x, parameters: block.namedParameters().map(\.1)) { block($0, rope: rope, prefix: r) }
                } else {
                    x = blocks[i](x, rope: rope, prefix: r)  // (B, R + T, C)
                }
                if layers.contains(i) {
                    let y = applyNorm ? norm(x) : x
                    out[i] = ViTFeatures(
                        patch: y.slice(axis: 1, r..<(r + t)).reshape([b, gh, gw, c]),
                        prefix: y.slice(axis: 1, 0..<r))
                }
            }
            return out
        }
    }
}

extension VisionTransformer {
    /// The banner every output of a random-weights model carries.
    public static func randomWeightsWarning(seed: UInt64) -> String {
        "WARNING: RANDOM WEIGHTS (--random-init \(seed)). These features come from a randomly initialised ViT and carry no semantics; they exercise the pipeline only. Pass --weights FILE (a timm checkpoint, .safetensors or .pth, e.g. vit_small_patch14_dinov2.safetensors) for real features."
    }

    /// A backbone from a timm name and either a checkpoint or a random-init seed. A transformers
    /// snapshot (a folder with config.json, or a weight file with config.json beside it) brings
    /// its own architecture and `arch` is not used. `resample` overrides the position-embedding
    /// resampling the weights' framework implies (nil: `auto`).
    public static func load(
        arch: String, weights: String?, randomInit: UInt64?,
        resample: PositionResampling? = nil
    ) throws -> VisionTransformer {
        if let w = weights, randomInit == nil, let snapshot = try TransformersSnapshot.locate(URL(fileURLWithPath: w)) {
            return try VisionTransformer(transformers: snapshot, resample: resample)
        }
        guard var cfg = ViTPresets.named(arch) else {
            throw ViTError("unknown ViT architecture '\(arch)'; known: \(ViTPresets.names.joined(separator: ", "))")
        }
        if let resample { cfg.positionResampling = resample }
        // An ONNX export brings its framework (transformers) and so its own resampling rule.
        if let w = weights, randomInit == nil, (try? WeightFiles.format(of: URL(fileURLWithPath: w))) == .onnx {
            return try VisionTransformer(onnx: URL(fileURLWithPath: w), preferred: cfg, resample: resample)
        }
        let model: VisionTransformer
        switch (weights, randomInit) {
        case (let w?, nil): model = try VisionTransformer(config: cfg, weights: URL(fileURLWithPath: w))
        case (nil, let s?): model = VisionTransformer(config: cfg, seed: s)
        case (nil, nil):
            throw ViTError(
                "give either --weights FILE (a timm checkpoint: .safetensors or .pth, or a transformers snapshot folder) or --random-init SEED")
        default: throw ViTError("give only one of --weights and --random-init")
        }
        model.weightsOrigin = randomInit == nil ? "timm checkpoint" : "random init"
        model.positionResamplingChosenBy = resample == nil ? "auto" : "config"
        return model
    }

    /// A model from a transformers snapshot (config.json + weights): architecture from
    /// config.json, names mapped by `HFCheckpointNames`, position resampling as that
    /// transformers class does it unless `resample` overrides it.
    public convenience init(transformers snapshot: TransformersSnapshot, resample: PositionResampling? = nil) throws {
        let (model, sd) = try snapshot.read()
        var cfg = model.config
        if let resample { cfg.positionResampling = resample }
        let dict = sd.filter { !VisionTransformer.isIgnoredKey($0.key) }
        try self.init(config: cfg, stateDict: dict, source: snapshot.weightsURL.path)
        passthroughTensors = sd.filter { VisionTransformer.isIgnoredKey($0.key) }
        weightsOrigin = "transformers \(model.layout.rawValue)"
        positionResamplingChosenBy = resample == nil ? "auto" : "config"
        transformers = model
    }

    /// What produced this model's features, for an output folder's backbone.json: the
    /// architecture, where the weights came from, and the position resampling in use.
    public var provenance: [String: String] {
        var p = ["model": config.name, "weights_origin": weightsOrigin]
        if let note = positionResamplingNote { p["pos_embed_resample"] = note }
        if let seed = randomInitSeed { p["random_init"] = "\(seed)" }
        return p
    }

    /// The position-embedding resampling in use and why, for output metadata and the report:
    /// e.g. "bicubic (auto: transformers dinov2)". nil for models without a learned
    /// position embedding (RoPE only).
    public var positionResamplingNote: String? {
        guard posEmbed != nil else { return nil }
        return "\(config.positionResampling.rawValue) (\(positionResamplingChosenBy): \(weightsOrigin))"
    }

    /// Loads an image file, resizes it to (height, width) with Pillow's bicubic and normalises it
    /// with this model's mean/std: (3, H, W).
    public func preprocess(_ url: URL, height: Int, width: Int) throws -> Tensor {
        let image = try RGBImage(contentsOf: url)
        let resized = (image.width == width && image.height == height) ? image : image.resized(width: width, height: height)
        return resized.normalizedTensor(mean: config.mean, std: config.std)
    }

    /// A 0-based block index from a (possibly negative, Python-style) layer index.
    public func resolveLayer(_ layer: Int) throws -> Int {
        let l = layer < 0 ? config.depth + layer : layer
        guard l >= 0 && l < config.depth else {
            throw ViTError("layer \(layer) out of range for \(config.name) (depth \(config.depth); use 0..<\(config.depth) or -1 for the last)")
        }
        return l
    }
}
