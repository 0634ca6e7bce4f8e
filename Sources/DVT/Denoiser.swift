import Formats
import Foundation
import NN
import TensorCore
import Vision

// DVT's stage-2 "generalizable denoiser": a learnable position embedding plus timm
// Transformer block(s), trained to map raw ViT features to stage-1 denoised features.
// Letters: B batch, H × W feature grid of the input, h × w the native grid the position
// embedding was learnt on, N = H·W tokens, C channels.

/// Architecture of a `Denoiser`. Stored in exported files (safetensors metadata) and in
/// training checkpoints so a weight file is self-describing.
public struct DenoiserConfig: Codable, Sendable, Equatable {
    /// Feature channels C (the ViT's embedding width).
    public var dim: Int
    /// Native grid (h, w): the feature grid the position embedding was learnt on.
    public var gridHeight: Int
    public var gridWidth: Int
    /// timm blocks. The official denoiser has exactly one.
    public var numBlocks: Int = 1
    /// Attention heads per block; the official rule is C/64 (we keep at least 1).
    public var numHeads: Int
    /// Learnable position embedding added before the blocks (DVT's `enable_pe`).
    public var enablePE: Bool = true

    public init(dim: Int, grid: (Int, Int), numBlocks: Int = 1, numHeads: Int? = nil, enablePE: Bool = true) {
        self.dim = dim
        gridHeight = grid.0
        gridWidth = grid.1
        self.numBlocks = numBlocks
        // DVT: num_heads = feature_dim // 64 (one 64-wide head per 64 channels).
        self.numHeads = numHeads ?? max(1, dim / 64)
        self.enablePE = enablePE
    }

    /// Checks the numbers before any tensor is allocated, with a message naming the field.
    public func validate() throws {
        guard dim > 0 else { throw DenoiserError("feature dim must be positive, got \(dim)") }
        guard gridHeight > 0 && gridWidth > 0 else { throw DenoiserError("grid must be positive, got \(gridHeight)x\(gridWidth)") }
        guard numBlocks >= 1 else { throw DenoiserError("num_blocks must be >= 1, got \(numBlocks)") }
        guard numHeads >= 1 && dim % numHeads == 0 else {
            throw DenoiserError("feature dim \(dim) is not divisible by \(numHeads) attention heads (DVT uses dim/64 heads)")
        }
    }
}

/// The DVT generalizable denoiser (stage 2):
/// ```
/// y = Blocks(x + PE(H, W))        x, y: (B, H, W, C), flattened to (B, N, C) around the blocks
/// ```
/// Each block is a timm `Block`: pre-norm LayerNorm (eps 1e-6), multi-head self-attention with
/// C/64 heads and qkv bias, MLP ratio 4 with exact GELU, no layer scale. `pos_embed` is
/// (1, h·w, C), initialised N(0, 1)·0.02 as DVT does (`torch.randn(...) * 0.02`).
///
/// When the input grid (H, W) differs from the native (h, w), the embedding is resampled as
/// timm's `resample_abs_pos_embed(pos_embed, (H, W), num_prefix_tokens=0)`: torch bicubic,
/// align_corners=False, antialias=True, on the (h, w, C) grid. We apply that resize as two
/// constant matrices (rows, then columns, each the resize of an identity basis), so the
/// resampled embedding is an ordinary differentiable expression of `pos_embed`: training on
/// another grid would still update it. (timm infers a square native grid from the token
/// count; we use the recorded (h, w), which is the same thing for square grids and also works
/// for non-square ones.)
///
/// State-dict keys are the official ones: `pos_embed` (absent with enable_pe off) and
/// `denoiser.<timm Block keys>` for one block (`denoiser.norm1.weight`,
/// `denoiser.attn.qkv.weight`, …). With more than one block the blocks are numbered as an
/// `nn.Sequential` assigned to `denoiser` would be: `denoiser.0.norm1.weight`,
/// `denoiser.1.norm1.weight`, …
///
/// - Paper: Yang et al., "Denoising Vision Transformers", ECCV 2024, §3.3 (generalizable denoiser).
public final class Denoiser: Layer {
    public let config: DenoiserConfig
    public let blocks: [Block]
    /// (1, h·w, C), or nil with `enablePE` off.
    public let posEmbed: Tensor?

    /// Resize matrices per target grid (rows (H, h), columns (W, w)); constants, built once.
    private var resampleCache: [String: (rows: Tensor?, cols: Tensor?)] = [:]
    /// Operand precision of the block's matrix products (`precision`, `--precision`; see
    /// `Precision`). Parameters, gradients and optimiser state stay fp32 whatever it is; the
    /// position-embedding resampling is always fp32 (DVT resamples with F.interpolate, which
    /// autocast leaves in fp32).
    public var precision: Precision = .fp32
    private let cacheLock = NSLock()

    /// A freshly initialised denoiser: blocks with torch's default Linear init, then the
    /// position embedding, all drawn from `seed`.
    public init(config: DenoiserConfig, seed: UInt64) throws {
        try config.validate()
        self.config = config
        var rng = RandomGenerator(seed: seed)
        blocks = (0..<config.numBlocks).map { _ in
            // timm Block defaults as DVT builds it: mlp_ratio 4, qkv_bias, GELU, LayerNorm eps 1e-6, no init_values.
            Block(config.dim, heads: config.numHeads, mlpRatio: 4, activation: .gelu, layerScale: nil, normEps: 1e-6, rng: &rng)
        }
        let n = config.gridHeight * config.gridWidth
        // DVT: nn.Parameter(torch.randn(1, h*w, C) * 0.02)
        posEmbed = config.enablePE ? Tensor.normal([1, n, config.dim], std: 0.02, rng: &rng, requiresGrad: true) : nil  // (1, h·w, C)
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        if let posEmbed { out.append(("pos_embed", posEmbed)) }
        if blocks.count == 1 {
            out += prefixed("denoiser", blocks[0].namedParameters())
        } else {
            for (i, b) in blocks.enumerated() { out += prefixed("denoiser.\(i)", b.namedParameters()) }
        }
        return out
    }

    /// The position embedding for a (H, W) grid as (N, C): the parameter itself on the native
    /// grid, else its bicubic (antialiased) resample. Differentiable in `pos_embed`.
    public func positionEmbedding(height: Int, width: Int) -> Tensor? {
        guard let posEmbed else { return nil }
        let (h, w, c) = (config.gridHeight, config.gridWidth, config.dim)
        var grid = posEmbed.reshape([h, w, c])  // (h, w, C)
        if height == h && width == w { return grid.reshape([h * w, c]) }
        let (rows, cols) = resampleMatrices(height: height, width: width)
        if let rows {
            grid = Tensor.matmul(rows, grid.reshape([h, w * c])).reshape([height, w, c])  // (H, w, C)
        }
        if let cols {
            // (H, w, C)ᵀ·Rxᵀ per row: (H, C, W), back to (H, W, C).
            grid = Tensor.matmul(grid, cols, transposeA: true, transposeB: true).permute([0, 2, 1])  // (H, W, C)
        }
        return grid.reshape([height * width, c])  // (N, C)
    }

    /// The 1-D resize matrices of torch's separable antialiased bicubic resize, obtained by
    /// resizing identity bases with `Resize.bicubicAntialiased` (so they are exactly the taps
    /// our torch-matching image resize uses). Nil for an axis whose size does not change:
    /// torch skips that pass too.
    func resampleMatrices(height: Int, width: Int) -> (rows: Tensor?, cols: Tensor?) {
        let key = "\(height)x\(width)"
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let hit = resampleCache[key] { return hit }
        let (h, w) = (config.gridHeight, config.gridWidth)
        func identity(_ n: Int, _ shape: [Int]) -> Tensor {
            let t = Tensor(zeros: shape)  // one-hot channel k at position k
            for k in 0..<n { t[flat: k * n + k] = 1 }
            return t
        }
        let rows: Tensor? =
            height == h
            ? nil
            : Resize.bicubicAntialiased(identity(h, [h, 1, h]), height: height, width: 1, layout: .hwc).reshape([height, h])  // (H, h)
        let cols: Tensor? =
            width == w
            ? nil
            : Resize.bicubicAntialiased(identity(w, [1, w, w]), height: 1, width: width, layout: .hwc).reshape([width, w])  // (W, w)
        resampleCache[key] = (rows, cols)
        return (rows, cols)
    }

    /// (B, H, W, C) → (B, H, W, C). Records the graph when grad mode is on (training).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(
            x.rank == 4 && x.shape[3] == config.dim,
            "Denoiser: input must be (B, H, W, \(config.dim)), got \(x.shape)")
        let (b, hh, ww, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var tokens = x.reshape([b, hh * ww, c])  // (B, N, C)
        if let pos = Precision.fp32.run({ positionEmbedding(height: hh, width: ww) }) {  // (N, C)
            tokens = tokens + pos.reshape([1, hh * ww, c])  // (B, N, C)
        }
        precision.run { for block in blocks { tokens = block(tokens) } }  // (B, N, C)
        return tokens.reshape([b, hh, ww, c])  // (B, H, W, C)
    }

    /// Inference on one map (H, W, C) or a batch (B, H, W, C), without recording a graph.
    public func denoise(_ features: Tensor) -> Tensor {
        withNoGrad {
            if features.rank == 3 {
                return self(features.reshape([1] + features.shape)).reshape(features.shape)
            }
            return self(features)
        }
    }
}

// MARK: Weight files

extension Denoiser {
    /// Value of the safetensors `format` metadata field of exported denoisers.
    public static let fileFormat = "dvt-denoiser-1"

    /// The architecture as safetensors metadata (strings), merged with `provenance` (ViT model,
    /// layer, stride, input size: where the features it denoises come from).
    public func metadata(provenance: [String: String] = [:]) -> [String: String] {
        var m = provenance
        m["format"] = Denoiser.fileFormat
        m["architecture"] =
            "DVT generalizable denoiser: pos_embed + \(config.numBlocks) timm Block(s) "
            + "(pre-norm LayerNorm eps 1e-6, MHSA with qkv bias, MLP ratio 4, exact GELU, no layer scale); input/output (B, H, W, C)"
        m["feature_dim"] = String(config.dim)
        m["num_blocks"] = String(config.numBlocks)
        m["num_heads"] = String(config.numHeads)
        m["enable_pe"] = config.enablePE ? "true" : "false"
        // DVT's names for the native grid.
        m["noise_map_height"] = String(config.gridHeight)
        m["noise_map_width"] = String(config.gridWidth)
        m["key_layout"] =
            config.numBlocks == 1
            ? "pos_embed, denoiser.<timm Block keys> (official DVT Denoiser)"
            : "pos_embed, denoiser.<i>.<timm Block keys> (blocks as nn.Sequential)"
        return m
    }

    /// Writes the weights in the official layout (shapes as PyTorch has them) with the
    /// architecture and `provenance` in the metadata, atomically.
    public func export(to url: URL, provenance: [String: String] = [:]) throws {
        try SafeTensors.write(stateDict(), metadata: metadata(provenance: provenance), to: url)
    }

    /// Loads an exported denoiser, or any file in the official key layout: safetensors, or an
    /// official .pth checkpoint (see DenoiserTorch.swift). The architecture comes from the
    /// metadata where present, else from the tensors (grid square, as timm assumes; heads C/64).
    public static func load(_ url: URL) throws -> Denoiser {
        try loadAnyFormat(url)
    }

    /// Builds a denoiser from a state dict in the official layout; every key must fit.
    public convenience init(stateDict dict: [String: Tensor], metadata: [String: String] = [:], source: String = "") throws {
        let config = try Denoiser.inferConfig(stateDict: dict, metadata: metadata, source: source)
        try self.init(config: config, seed: 0)
        try load(stateDict: dict, strict: true, source: source)
    }

    /// The architecture of a state dict in the official layout (see `load`).
    public static func inferConfig(
        stateDict dict: [String: Tensor], metadata: [String: String] = [:],
        source: String = ""
    ) throws -> DenoiserConfig {
        let origin = source.isEmpty ? "denoiser weights" : source
        // One block: denoiser.norm1.weight; several: denoiser.0.norm1.weight, denoiser.1.…
        var numBlocks = 0
        let normKey: String
        if dict["denoiser.norm1.weight"] != nil {
            numBlocks = 1
            normKey = "denoiser.norm1.weight"
        } else {
            while dict["denoiser.\(numBlocks).norm1.weight"] != nil { numBlocks += 1 }
            normKey = "denoiser.0.norm1.weight"
        }
        guard numBlocks > 0, let norm = dict[normKey], norm.rank == 1 else {
            throw DenoiserError(
                "\(origin): no 'denoiser.norm1.weight' (or 'denoiser.0.norm1.weight') of shape (C): not a DVT denoiser in the official layout; keys: \(dict.keys.sorted().prefix(8).joined(separator: ", "))"
            )
        }
        let dim = norm.shape[0]
        var gh: Int, gw: Int
        let enablePE = dict["pos_embed"] != nil
        if let mh = metadata["noise_map_height"].flatMap(Int.init), let mw = metadata["noise_map_width"].flatMap(Int.init) {
            // Crafted metadata once overflowed gh·gw (a trap); a grid side beyond 4096 tokens is
            // not a denoiser anyone trained, so refuse it before any arithmetic.
            guard (1...4096).contains(mh), (1...4096).contains(mw) else {
                throw DenoiserError("\(origin): metadata noise_map_height × noise_map_width = \(mh) × \(mw) is out of range (each 1…4096)")
            }
            (gh, gw) = (mh, mw)
        } else if let pos = dict["pos_embed"] {
            guard pos.rank == 3, pos.shape[0] == 1, pos.shape[2] == dim else {
                throw DenoiserError("\(origin): pos_embed has shape \(pos.shape), expected (1, h·w, \(dim))")
            }
            // timm's resample_abs_pos_embed assumes a square grid when the old size is not given.
            let n = pos.shape[1], side = Int(Double(n).squareRoot().rounded())
            guard side * side == n else {
                throw DenoiserError(
                    "\(origin): pos_embed has \(n) tokens, not a square grid, and the metadata has no noise_map_height/noise_map_width")
            }
            (gh, gw) = (side, side)
        } else {
            throw DenoiserError("\(origin): without pos_embed the metadata must give noise_map_height and noise_map_width")
        }
        if let pos = dict["pos_embed"], pos.shape != [1, gh * gw, dim] {
            throw DenoiserError("\(origin): pos_embed has shape \(pos.shape) but the metadata grid is \(gh)x\(gw) with dim \(dim)")
        }
        let heads = metadata["num_heads"].flatMap(Int.init)
        let config = DenoiserConfig(dim: dim, grid: (gh, gw), numBlocks: numBlocks, numHeads: heads, enablePE: enablePE)
        do { try config.validate() } catch let e as DenoiserError { throw DenoiserError("\(origin): \(e.description)") }
        return config
    }
}
