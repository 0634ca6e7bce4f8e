import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import Training
import Vision

/// How to build the ViT: the same flags for every command that extracts features.
struct BackboneOptions: ParsableArguments {
    @Option(help: "timm architecture name (see `dvt models`).")
    var arch = "vit_small_patch14_dinov2.lvd142m"
    @Option(
        help:
            "timm checkpoint for --arch: .safetensors or .pth (timm or DINOv2 hub names), or a Hugging Face transformers snapshot folder (config.json sets the architecture)."
    )
    var weights: String?
    @Option(
        name: .customLong("pos-embed-resample"),
        help:
            "Position-embedding resampling: auto (as the weights' framework does), bicubic_antialias (timm), bicubic (transformers' Dinov2/ViT/CLIP/SigLIP) or bicubic_offset (facebookresearch/dinov2's +0.1 scale factors)."
    )
    var posEmbedResample: DVTSettings.Run.PosEmbedResample = .auto
    @Option(name: .customLong("random-init"), help: "Use seeded random weights instead of a checkpoint (demos and tests only).")
    var randomInit: UInt64?
    @Option(parsing: .upToNextOption, help: "Input size H W (default: the preset's pretraining size, rounded to the patch grid).")
    var size: [Int] = []
    @Option(help: "Block index (0-based; negative counts from the end, -1 = last).")
    var layer = -1
    @Option(help: "Patch stride (DVT's stride option; default the patch size).")
    var stride: Int?
    @Option(
        help: "Operand precision of the matrix products: fp32, or bf16 (bfloat16 operands, fp32 accumulation and everything else; docs/precision.md)."
    )
    var precision: Precision = .fp32

    // "Neither --weights nor --random-init" is reported by `load()` (VisionTransformer.load),
    // not here: commands with a ViT-free mode (`dvt denoise --features`) carry these options too.
    func validate() throws {
        if weights != nil && randomInit != nil { throw ValidationError("give only one of --weights and --random-init") }
        if !(size.isEmpty || size.count == 2) || size.contains(where: { $0 < 1 }) {
            throw ValidationError("--size takes two positive numbers, H W; got \(size)")
        }
        if let stride, stride < 1 { throw ValidationError("--stride must be >= 1, got \(stride)") }
    }

    func load() throws -> VisionTransformer {
        let model = try loadViT(arch: arch, weights: weights, randomInit: randomInit, precision: precision, resample: PositionResampling(setting: posEmbedResample))
        if let s = stride, s > model.config.patchSize {
            throw ConfigError(
                "--stride \(s) is not allowed for \(model.config.name): the stride must be in 1...\(model.config.patchSize) (its patch size)")
        }
        return model
    }

    /// (H, W) of the network input.
    func inputSize(for model: VisionTransformer) -> (Int, Int) {
        if size.count == 2 { return (size[0], size[1]) }
        return (model.config.imageSize, model.config.imageSize)
    }

    /// `inputSize(for:)` after checking it and --stride against the model and the memory a
    /// forward pass of `batch` images needs (InputGeometry.validate).
    func checkedInputSize(for model: VisionTransformer, batch: Int) throws -> (Int, Int) {
        let (h, w) = inputSize(for: model)
        try InputGeometry.validate(height: h, width: w, stride: stride, model: model.config, batch: batch, names: .flags)
        return (h, w)
    }
}

/// The ViT of every command (from flags or from a config): weights or seeded random weights,
/// the operand precision, and random weights announced loudly on stderr.
func loadViT(
    arch: String, weights: String?, randomInit: UInt64?, precision: Precision,
    resample: PositionResampling?
) throws -> VisionTransformer {
    let model = try VisionTransformer.load(arch: arch, weights: weights, randomInit: randomInit, resample: resample)
    model.precision = precision
    if let seed = model.randomInitSeed {
        FileHandle.standardError.write(Data((VisionTransformer.randomWeightsWarning(seed: seed) + "\n").utf8))
    }
    return model
}

extension Precision: ExpressibleByArgument {}

/// Reads a choice flag (`--task depth`) as its settings enum; an unknown value is an error that
/// names it and the choices: "unknown WHAT 'x': use a, b or c".
func choiceFlag<E: ConfigChoice>(_ what: String) -> @Sendable (String) throws -> E {
    { text in
        guard let value = E(rawValue: text) else {
            let names = E.allCases.map(\.rawValue)
            throw ValidationError("unknown \(what) '\(text)': use \(names.dropLast().joined(separator: ", ")) or \(names.last!)")
        }
        return value
    }
}

/// `--pos-embed-resample`: the `pos_embed_resample` key's values.
extension DVTSettings.Run.PosEmbedResample: ExpressibleByArgument {}
