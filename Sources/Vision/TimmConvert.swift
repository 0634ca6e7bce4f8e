import Formats
import Foundation
import TensorCore

// `dvt convert`: any checkpoint the ViT reads, written back as a timm state dict that
// `timm.create_model(arch, pretrained=False, num_classes=0, **kwargs).load_state_dict(sd,
// strict=True)` accepts (checked by scripts/check_convert_timm.py, run from ConvertCLITests).

/// The timm architecture a converted state dict loads into, and the file's metadata.
public struct TimmConversion: Sendable {
    /// `timm.create_model` name.
    public var arch: String
    /// Keyword arguments that give timm the checkpoint's shapes (JSON values).
    public var kwargs: [String: String]
    /// LayerNorm eps of the checkpoint (timm's `norm_layer=partial(LayerNorm, eps=…)`).
    public var layerNormEps: Float
    public var tensors: [String: Tensor]

    /// `kwargs` as one JSON object; values that read as JSON (numbers, true/false) stay
    /// unquoted, the rest are strings.
    public var kwargsJSON: String {
        let items = kwargs.keys.sorted().map { k -> String in
            let v = kwargs[k]!
            let raw = v == "true" || v == "false" || Double(v) != nil
            return "\"\(k)\": " + (raw ? v : "\"\(v)\"")
        }
        return "{" + items.joined(separator: ", ") + "}"
    }

    /// The safetensors metadata / .pth sidecar: how to build the timm model for these weights.
    public var metadata: [String: String] {
        ["format": "pt", "timm_arch": arch, "timm_kwargs": kwargsJSON, "ln_eps": "\(layerNormEps)"]
    }

    /// The timm state dict of `model` with the architecture to load it into.
    public init(model: VisionTransformer) throws {
        let c = model.config
        var sd = model.timmStateDict()
        var kw: [String: String] = [
            "embed_dim": "\(c.embedDim)", "depth": "\(c.depth)", "num_heads": "\(c.heads)",
            "patch_size": "\(c.patchSize)", "img_size": "\(c.imageSize)",
        ]
        var arch: String
        if let hf = model.transformers {
            arch = hf.timmArch
            kw.merge(hf.timmKwargs.filter { $0.key != "ln_eps" }) { _, new in new }
            if hf.layout == .dinov2WithRegisters { arch = "vit_small_patch14_reg4_dinov2" }
        } else {
            arch = c.name.split(separator: ".").first.map(String.init) ?? c.name
        }
        // timm sizes the MLP as int(dim · mlp_ratio) (Block / EvaBlock); half a unit above the
        // exact ratio survives the float product and the truncation.
        if let fc1 = sd["blocks.0.mlp.fc1.weight"] ?? sd["blocks.0.mlp.fc1_g.weight"], fc1.rank == 2 {
            kw["mlp_ratio"] = "\((Double(fc1.shape[0]) + 0.5) / Double(c.embedDim))"
        }
        if c.rope != nil && c.evaLayerScaleKeys {
            // timm's Eva keeps a fused qkv without bias and separate `q_bias`/`v_bias` with k's
            // bias a zero buffer (eva.py EvaAttention, lines 194-200).
            kw["num_reg_tokens"] = "\(c.registerTokens)"
            kw["reg_tokens"] = nil
            kw["qkv_bias"] = c.qkvBias ? "true" : "false"
            for i in 0..<c.depth {
                guard let b = sd.removeValue(forKey: "blocks.\(i).attn.qkv.bias") else { continue }
                let d = c.embedDim
                if b.slice(axis: 0, d..<(2 * d)).scalars.contains(where: { $0 != 0 }) {
                    throw WeightFileError("blocks.\(i).attn.qkv.bias has a nonzero key bias, which timm's Eva (fixed zero k_bias) cannot hold")
                }
                sd["blocks.\(i).attn.q_bias"] = b.slice(axis: 0, 0..<d)
                sd["blocks.\(i).attn.v_bias"] = b.slice(axis: 0, (2 * d)..<(3 * d))
            }
        }
        self.arch = arch
        self.kwargs = kw
        self.layerNormEps = c.normEps
        self.tensors = sd
    }

    /// Writes the state dict to `url`, as safetensors (.safetensors, with `metadata`) or as a
    /// `torch.save` archive (.pth / .pt / .bin, a plain state dict, the metadata in
    /// `<url>.timm.json` beside it). Atomic: temp file, then rename.
    public func write(to url: URL) throws {
        switch url.pathExtension.lowercased() {
        case "safetensors":
            try SafeTensors.write(tensors, metadata: metadata, to: url)
        case "pth", "pt", "bin":
            let entries = tensors.keys.sorted().map { ($0, TorchWriter.Value.tensor(tensors[$0]!)) }
            try AtomicFile.write(try TorchWriter.serialize(.dict(entries)), to: url)
            try AtomicFile.writeJSON(metadata, to: URL(fileURLWithPath: url.path + ".timm.json"))
        default:
            throw WeightFileError("\(url.path): the output must end in .safetensors, .pth, .pt or .bin")
        }
    }
}
