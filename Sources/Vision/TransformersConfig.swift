import Formats
import Foundation
import NN
import TensorCore

// The architecture of a transformers snapshot, read from its config.json (and the normalisation
// from preprocessor_config.json when present). Defaults for keys a config.json leaves out are
// the configuration classes' own (transformers 5.25.0, models/<name>/configuration_<name>.py:
// Dinov2Config lines 57-75, Dinov2WithRegistersConfig 64-83, DINOv3ViTConfig 74-100,
// ViTConfig 50-62, DeiTConfig 50-62, CLIPVisionConfig 97-106, SiglipVisionConfig 93-103).

/// A transformers vision model: its layout, the ViTConfig that runs it, and the timm
/// architecture (name and `timm.create_model` keyword arguments) its weights convert to.
public struct TransformersModel: Sendable {
    public var layout: TransformersLayout
    public var config: ViTConfig
    /// The timm architecture the converted state dict loads into (`dvt convert`).
    public var timmArch: String
    /// `timm.create_model(timmArch, **timmKwargs)` arguments that give the same shapes.
    public var timmKwargs: [String: String]

    /// Largest config.json / preprocessor_config.json accepted (real ones are a few KB).
    public static let maxConfigBytes = 1 << 20

    /// Reads `configURL` (config.json); `preprocessor` is preprocessor_config.json, if any.
    public static func read(config configURL: URL, preprocessor: URL? = nil) throws -> TransformersModel {
        let json = try readJSON(configURL)
        var m = try TransformersModel(config: json, file: configURL.path)
        if let preprocessor, FileManager.default.fileExists(atPath: preprocessor.path) {
            let p = try readJSON(preprocessor)
            let keys = JSONKeys(p, file: preprocessor.path)
            if let mean = try keys.floats("image_mean", count: 3) { m.config.mean = mean }
            if let std = try keys.floats("image_std", count: 3) { m.config.std = std }
        }
        return m
    }

    static func readJSON(_ url: URL) throws -> HeaderJSON {
        let attrs = try? FileManager.default.attributesOfItem(atPath: url.path)
        guard let size = (attrs?[.size] as? NSNumber)?.intValue else {
            throw WeightFileError("\(url.path): cannot read the file (missing or unreadable)")
        }
        guard size <= maxConfigBytes else {
            throw WeightFileError("\(url.path): \(size) bytes, more than the \(maxConfigBytes) a model config may have")
        }
        let data = try Data(contentsOf: url)
        do {
            return try HeaderJSONParser.parse([UInt8](data))
        } catch {
            throw WeightFileError("\(url.path): not valid JSON: \(error)")
        }
    }

    /// The model described by a parsed config.json (`file` names it in errors).
    public init(config json: HeaderJSON, file: String) throws {
        var keys = JSONKeys(json, file: file)
        guard let type = try keys.string("model_type") else {
            throw WeightFileError("\(file): no 'model_type' key; expected a transformers config.json")
        }
        guard let layout = TransformersLayout(modelType: type) else {
            throw WeightFileError(
                "\(file): model_type '\(type)' is not a supported ViT; supported: \(TransformersLayout.allCases.map(\.rawValue).joined(separator: ", ")), clip, siglip"
            )
        }
        // The two-tower CLIPConfig / SiglipConfig keep the vision tower under `vision_config`.
        if type == "clip" || type == "siglip" {
            guard case .object(let o)? = keys.value("vision_config") else {
                throw WeightFileError("\(file): model_type '\(type)' without a 'vision_config' object")
            }
            keys = JSONKeys(.object(o), file: file, path: "vision_config.")
        }
        self.layout = layout
        let d = Self.defaults(layout)
        let hidden = try keys.int("hidden_size") ?? d.hidden
        let layers = try keys.int("num_hidden_layers") ?? d.layers
        let heads = try keys.int("num_attention_heads") ?? 12
        let patch = try keys.squareInt("patch_size") ?? d.patch
        let image = try keys.squareInt("image_size") ?? 224
        let eps = try keys.double("layer_norm_eps") ?? d.eps
        let act = try keys.string("hidden_act") ?? d.act
        for (name, v) in [
            ("hidden_size", hidden), ("num_hidden_layers", layers), ("num_attention_heads", heads), ("patch_size", patch), ("image_size", image),
        ] {
            guard v >= 1 && v <= 1 << 16 else { throw WeightFileError("\(file): '\(keys.path)\(name)' = \(v) is out of range 1...65536") }
        }
        guard hidden % heads == 0 else {
            throw WeightFileError("\(file): hidden_size \(hidden) is not divisible by num_attention_heads \(heads)")
        }
        guard image >= patch else { throw WeightFileError("\(file): image_size \(image) is smaller than patch_size \(patch)") }
        if let ch = try keys.int("num_channels"), ch != 3 {
            throw WeightFileError("\(file): num_channels \(ch); only RGB (3) models are supported")
        }
        var c = ViTConfig(
            name: "\(type) (transformers, hidden \(hidden), \(layers) layers, patch \(patch))", patchSize: patch,
            embedDim: hidden, depth: layers, heads: heads, imageSize: image)
        c.normEps = Float(eps)
        let gatedKey = try keys.bool("use_gated_mlp") ?? false
        let gated = layout == .dinov3 && gatedKey
        if gated {
            // DINOv3ViTGatedMLP: down(act(gate(x)) · up(x)) (modeling_dinov3_vit.py line 379).
            guard act == "silu" else {
                throw WeightFileError("\(file): use_gated_mlp with hidden_act '\(act)'; only silu (SwiGLU) is supported")
            }
        } else {
            c.activation = try Self.activation(act, key: "\(keys.path)hidden_act", file: file)
        }
        var kw: [String: String] = [
            "embed_dim": "\(hidden)", "depth": "\(layers)", "num_heads": "\(heads)",
            "patch_size": "\(patch)", "img_size": "\(image)",
        ]
        var arch: String
        switch layout {
        case .dinov2, .dinov2WithRegisters:
            c.layerScale = true
            c.qkvBias = try keys.bool("qkv_bias") ?? true
            c.mlpRatio = try keys.double("mlp_ratio") ?? 4
            if try keys.bool("use_swiglu_ffn") ?? false {
                c.mlp = .swigluPacked
                arch = "vit_giant_patch14_dinov2"
                kw["mlp_layer"] = "swiglupacked"
            } else {
                arch = "vit_small_patch14_dinov2"
            }
            if layout == .dinov2WithRegisters {
                let r = try keys.int("num_register_tokens") ?? 4
                guard r >= 0 && r <= 1024 else { throw WeightFileError("\(file): num_register_tokens \(r) out of range 0...1024") }
                c.registerTokens = r
                // Registers carry no position (see HFCheckpointNames): timm's reg layout.
                c.noEmbedClass = true
                kw["reg_tokens"] = "\(r)"
                kw["no_embed_class"] = "true"
                // modeling_dinov2_with_registers.py line 125: antialias=True, unlike Dinov2.
                c.positionResampling = .bicubicAntialias
            } else {
                c.positionResampling = .bicubic
            }
            kw["init_values"] = "1.0"
            kw["qkv_bias"] = c.qkvBias ? "true" : "false"
        case .dinov3:
            c.layerScale = true
            c.evaLayerScaleKeys = true
            c.rope = .dinov3(temperature: Float(try keys.double("rope_theta") ?? 100))
            c.absolutePositionEmbedding = false
            c.registerTokens = try keys.int("num_register_tokens") ?? 0
            let (qb, kb, vb) = (try keys.bool("query_bias") ?? true, try keys.bool("key_bias") ?? false, try keys.bool("value_bias") ?? true)
            c.qkvBias = qb || kb || vb
            if gated { c.mlp = .swigluPacked }
            c.mlpHidden = try keys.int("intermediate_size") ?? 1536
            arch = "vit_small_patch16_dinov3"
            kw["reg_tokens"] = "\(c.registerTokens)"
            kw["qkv_bias"] = c.qkvBias ? "true" : "false"
            kw["mlp_ratio"] = "\(Double(c.mlpHidden!) / Double(hidden))"
        case .vit, .deit:
            c.qkvBias = try keys.bool("qkv_bias") ?? true
            c.mlpHidden = try keys.int("intermediate_size") ?? 3072
            c.positionResampling = .bicubic
            if layout == .deit {
                // DeiTModel always has the distillation token after the class token, both with a
                // position (modeling_deit.py lines 83-92, 153): timm's distilled layout, here a
                // second prefix token under the position embedding.
                c.registerTokens = 1
                kw["reg_tokens"] = "1"
            }
            arch = "vit_base_patch16_224"
            kw["mlp_ratio"] = "\(Double(c.mlpHidden!) / Double(hidden))"
            kw["qkv_bias"] = c.qkvBias ? "true" : "false"
        case .clip:
            // CLIPVisionModel (modeling_clip.py lines 594-597): patch conv without bias,
            // `pre_layrnorm` before the encoder (timm's norm_pre), `post_layernorm`.
            c.preNorm = true
            c.mlpHidden = try keys.int("intermediate_size") ?? 3072
            c.mean = ImageNormalization.clipMean
            c.std = ImageNormalization.clipStd
            c.positionResampling = .bicubic
            arch = c.activation == .quickGelu ? "vit_base_patch16_clip_quickgelu_224" : "vit_base_patch16_clip_224"
            kw["mlp_ratio"] = "\(Double(c.mlpHidden!) / Double(hidden))"
        case .siglip:
            // SiglipVisionTransformer (modeling_siglip.py): no class token; the MAP head
            // (`head`, when vision_use_head) is not part of the dense features.
            c.classToken = false
            c.mlpHidden = try keys.int("intermediate_size") ?? 3072
            c.mean = ImageNormalization.inceptionMean
            c.std = ImageNormalization.inceptionStd
            c.positionResampling = .bicubic
            arch = "vit_base_patch16_siglip_224"
            kw["mlp_ratio"] = "\(Double(c.mlpHidden!) / Double(hidden))"
            if !(try keys.bool("vision_use_head") ?? true) { kw["global_pool"] = "avg" }
        }
        switch c.activation {
        case .gelu: break
        case .quickGelu: kw["act_layer"] = "quick_gelu"
        case .geluTanh: kw["act_layer"] = "gelu_tanh"
        case .relu: kw["act_layer"] = "relu"
        }
        kw["ln_eps"] = "\(eps)"
        self.config = c
        self.timmArch = arch
        self.timmKwargs = kw
    }

    struct Defaults { var hidden: Int, layers: Int, patch: Int, eps: Double, act: String }

    static func defaults(_ layout: TransformersLayout) -> Defaults {
        switch layout {
        case .dinov2: return Defaults(hidden: 768, layers: 12, patch: 14, eps: 1e-6, act: "gelu")
        case .dinov2WithRegisters: return Defaults(hidden: 768, layers: 12, patch: 16, eps: 1e-6, act: "gelu")
        case .dinov3: return Defaults(hidden: 384, layers: 12, patch: 16, eps: 1e-5, act: "gelu")
        case .vit, .deit: return Defaults(hidden: 768, layers: 12, patch: 16, eps: 1e-12, act: "gelu")
        case .clip: return Defaults(hidden: 768, layers: 12, patch: 32, eps: 1e-5, act: "quick_gelu")
        case .siglip: return Defaults(hidden: 768, layers: 12, patch: 16, eps: 1e-6, act: "gelu_pytorch_tanh")
        }
    }

    /// transformers' ACT2FN names (activations.py) that a ViT MLP here can run.
    static func activation(_ name: String, key: String, file: String) throws -> Activation {
        switch name {
        case "gelu": return .gelu
        case "quick_gelu": return .quickGelu
        case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": return .geluTanh
        case "relu": return .relu
        default: throw WeightFileError("\(file): \(key) '\(name)' is not supported (gelu, quick_gelu, gelu_pytorch_tanh, relu)")
        }
    }
}

/// Typed, bounded access to a JSON object's keys, each error naming the file and the key.
struct JSONKeys {
    let object: [String: HeaderJSON]
    let file: String
    let path: String

    init(_ json: HeaderJSON, file: String, path: String = "") {
        if case .object(let o) = json { object = o } else { object = [:] }
        self.file = file
        self.path = path
    }

    func value(_ key: String) -> HeaderJSON? {
        guard let v = object[key], v != .null else { return nil }
        return v
    }

    func fail(_ key: String, _ v: HeaderJSON, _ want: String) -> Error {
        WeightFileError("\(file): '\(path)\(key)' is a \(v.typeName), expected \(want)")
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw fail(key, v, "a string") }
        return s
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard case .integer(let i) = v else { throw fail(key, v, "an integer") }
        return i
    }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        switch v {
        case .integer(let i): return Double(i)
        case .number(let d) where d.isFinite: return d
        default: throw fail(key, v, "a finite number")
        }
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw fail(key, v, "true or false") }
        return b
    }

    /// An integer, or a [n, n] pair (transformers accepts both for image and patch sizes).
    func squareInt(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        switch v {
        case .integer(let i): return i
        case .array(let a) where a.count == 2:
            if case .integer(let h) = a[0], case .integer(let w) = a[1] {
                guard h == w else { throw WeightFileError("\(file): '\(path)\(key)' is \(h)x\(w); only square sizes are supported") }
                return h
            }
            throw fail(key, v, "an integer or a pair of integers")
        default: throw fail(key, v, "an integer or a pair of integers")
        }
    }

    func floats(_ key: String, count: Int) throws -> [Float]? {
        guard let v = value(key) else { return nil }
        guard case .array(let a) = v, a.count == count else { throw fail(key, v, "an array of \(count) numbers") }
        return try a.map { e -> Float in
            switch e {
            case .integer(let i): return Float(i)
            case .number(let d) where d.isFinite: return Float(d)
            default: throw fail(key, e, "numbers only")
            }
        }
    }
}
