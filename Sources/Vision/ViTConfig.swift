import NN
import Settings

/// Architecture of a timm `VisionTransformer`: what differs between the families DVT studies.
public struct ViTConfig: Sendable, Codable, Equatable {
    /// timm model name, e.g. `vit_small_patch14_dinov2.lvd142m`.
    public var name: String
    public var patchSize: Int
    public var embedDim: Int
    public var depth: Int
    public var heads: Int
    public var mlpRatio: Double = 4
    /// Register tokens (DINOv2-reg: 4).
    public var registerTokens: Int = 0
    public var classToken: Bool = true
    /// timm `no_embed_class`: the position embedding covers patches only (DeiT-III, DINOv2-reg).
    public var noEmbedClass: Bool = false
    /// Layer-scale `ls1`/`ls2` in every block (DINOv2, DeiT-III).
    public var layerScale: Bool = false
    /// timm `pre_norm` (CLIP): a `norm_pre` LayerNorm before the blocks, and no patch-embed bias.
    public var preNorm: Bool = false
    public var activation: Activation = .gelu
    /// LayerNorm eps: timm ViTs use 1e-6, the CLIP models torch's default 1e-5.
    public var normEps: Float = 1e-6
    /// Pretraining input size (square); the position embedding's grid is imageSize / patchSize.
    public var imageSize: Int
    /// Normalisation the checkpoint was trained with.
    public var mean: [Float] = ImageNormalization.imagenetMean
    public var std: [Float] = ImageNormalization.imagenetStd

    // Families beyond the plain timm VisionTransformer (see ViTFamilies.swift for the timm
    // sources of each). The defaults are the plain ViT.
    /// The block's MLP.
    public var mlp: ViTMlp = .mlp
    /// MLP hidden width H (fc2's input). nil: timm's `int(C · mlp_ratio)` (halved for the packed
    /// SwiGLU). A checkpoint's own shapes override it when it loads.
    public var mlpHidden: Int?
    /// Separate `q_proj`/`k_proj`/`v_proj` (EVA-02, k without bias) instead of a fused `qkv`.
    public var separateQKV = false
    /// Bias on the fused `qkv` projection (DINOv3 has none).
    public var qkvBias = true
    /// EVA `scale_attn_inner`: LayerNorm `attn.norm` on the attention output before `proj`.
    public var attentionNorm = false
    /// Rotary position embedding in every block's attention, or nil.
    public var rope: ViTRope?
    /// A learned `pos_embed` added after the patch embedding (false for DINOv3).
    public var absolutePositionEmbedding = true
    /// timm's `Eva` key names for layer scale: `blocks.i.gamma_1`/`gamma_2` instead of
    /// `ls1.gamma`/`ls2.gamma`.
    public var evaLayerScaleKeys = false
    /// How `pos_embed` is resampled to a token grid other than the pretraining one: as the
    /// framework the weights come from does it (see `PositionResampling`).
    public var positionResampling: PositionResampling = .bicubicAntialias

    /// H for the MLP built before a checkpoint is read.
    public var mlpHiddenWidth: Int {
        if let mlpHidden { return mlpHidden }
        let packed = Int(Double(embedDim) * mlpRatio)  // timm Block: hidden_features = int(dim * mlp_ratio)
        return mlp == .swigluPacked ? packed / 2 : packed
    }
    public var headDim: Int { embedDim / heads }

    public var prefixTokens: Int { (classToken ? 1 : 0) + registerTokens }
    /// Rows of `pos_embed` that belong to prefix tokens (0 with `no_embed_class`).
    public var positionPrefixRows: Int { noEmbedClass ? 0 : prefixTokens }
    public var pretrainGrid: Int { imageSize / patchSize }

    public init(name: String, patchSize: Int, embedDim: Int, depth: Int, heads: Int, imageSize: Int) {
        self.name = name
        self.patchSize = patchSize
        self.embedDim = embedDim
        self.depth = depth
        self.heads = heads
        self.imageSize = imageSize
    }
}

/// The resampling of a learned position embedding to another token grid. Frameworks differ,
/// and features follow the one the weights were trained and exported with (docs/backbones.md).
public enum PositionResampling: String, Sendable, Codable, CaseIterable {
    /// torch bicubic with antialias=True (a = −0.5, support widened when shrinking): timm's
    /// `resample_abs_pos_embed` (timm/layers/pos_embed.py) and transformers'
    /// Dinov2WithRegisters (modeling_dinov2_with_registers.py line 125).
    case bicubicAntialias = "bicubic_antialias"
    /// torch bicubic without antialias (upsample_bicubic2d: a = −0.75, 4 taps, edge-clamped):
    /// transformers' `interpolate_pos_encoding` of Dinov2, ViT, DeiT, CLIP and SigLIP
    /// (modeling_dinov2.py line 116, modeling_vit.py 118, modeling_deit.py 123,
    /// modeling_clip.py 191, modeling_siglip.py 165; transformers 5.25.0).
    case bicubic
    /// torch bicubic without antialias at scale factors ((Gh + 0.1) / G0, (Gw + 0.1) / G0):
    /// facebookresearch/dinov2's `interpolate_pos_encoding` with its default
    /// `interpolate_offset=0.1`, and transformers' Dinov2 before it resized by `size` (the
    /// "avoid floating point error" offset of facebookresearch/dino issue 8). ATen maps output
    /// i to input (i + 0.5) / scale − 0.5, so the grid is sampled slightly differently from
    /// `bicubic`; graphs exported with it (an ONNX `Resize` with `scales`) need this rule.
    case bicubicOffset = "bicubic_offset"
}

extension PositionResampling {
    /// The `pos_embed_resample` setting's rule: nil for `auto`, when the weights' framework
    /// decides.
    public init?(setting: DVTSettings.Run.PosEmbedResample) {
        switch setting {
        case .auto: return nil
        case .bicubicAntialias: self = .bicubicAntialias
        case .bicubic: self = .bicubic
        case .bicubicOffset: self = .bicubicOffset
        }
    }
}

/// The MLP of a ViT block.
public enum ViTMlp: String, Sendable, Codable {
    /// timm `Mlp`: fc1 → activation → fc2.
    case mlp
    /// timm `SwiGLUPacked`: packed fc1, first half SiLU-gated (DINOv2 giant).
    case swigluPacked
    /// timm `SwiGLU` with separate `fc1_g`/`fc1_x` and a LayerNorm inside (EVA-02, `scale_mlp`).
    case swiglu
}

/// Per-channel normalisation constants of the checkpoints.
public enum ImageNormalization {
    /// timm IMAGENET_DEFAULT_MEAN / STD (DINO, DINOv2, DeiT-III, MAE).
    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]
    /// timm OPENAI_CLIP_MEAN / STD (CLIP, both OpenAI and LAION weights).
    public static let clipMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let clipStd: [Float] = [0.26862954, 0.26130258, 0.27577711]
    /// timm IMAGENET_INCEPTION_MEAN / STD (augreg ViTs).
    public static let inceptionMean: [Float] = [0.5, 0.5, 0.5]
    public static let inceptionStd: [Float] = [0.5, 0.5, 0.5]
}

/// Architecture presets by timm name: every ViT in DVT's model list (`dvt/models/vit_wrapper.py`
/// MODEL_LIST), plus CLIP's QuickGELU variant, DINOv3 and SigLIP. The families beyond the plain
/// VisionTransformer (SwiGLU, EVA-02, DINOv3, SigLIP) are in ViTFamilies.swift.
public enum ViTPresets {
    public static let all: [ViTConfig] = {
        var list: [ViTConfig] = []
        func dino2(_ size: String, _ dim: Int, _ depth: Int, _ heads: Int, reg: Bool) -> ViTConfig {
            var c = ViTConfig(
                name: "vit_\(size)_patch14_\(reg ? "reg4_" : "")dinov2.lvd142m", patchSize: 14,
                embedDim: dim, depth: depth, heads: heads, imageSize: 518)
            c.layerScale = true
            if reg { c.registerTokens = 4; c.noEmbedClass = true }
            return c
        }
        for reg in [false, true] {
            list.append(dino2("small", 384, 12, 6, reg: reg))
            list.append(dino2("base", 768, 12, 12, reg: reg))
            list.append(dino2("large", 1024, 24, 16, reg: reg))
        }
        // DINO v1
        list.append(ViTConfig(name: "vit_small_patch8_224.dino", patchSize: 8, embedDim: 384, depth: 12, heads: 6, imageSize: 224))
        list.append(ViTConfig(name: "vit_small_patch16_224.dino", patchSize: 16, embedDim: 384, depth: 12, heads: 6, imageSize: 224))
        list.append(ViTConfig(name: "vit_base_patch8_224.dino", patchSize: 8, embedDim: 768, depth: 12, heads: 12, imageSize: 224))
        list.append(ViTConfig(name: "vit_base_patch16_224.dino", patchSize: 16, embedDim: 768, depth: 12, heads: 12, imageSize: 224))
        // MAE
        list.append(ViTConfig(name: "vit_base_patch16_224.mae", patchSize: 16, embedDim: 768, depth: 12, heads: 12, imageSize: 224))
        list.append(ViTConfig(name: "vit_large_patch16_224.mae", patchSize: 16, embedDim: 1024, depth: 24, heads: 16, imageSize: 224))
        list.append(ViTConfig(name: "vit_huge_patch14_224.mae", patchSize: 14, embedDim: 1280, depth: 32, heads: 16, imageSize: 224))
        // CLIP
        var clipLaion = ViTConfig(
            name: "vit_base_patch16_clip_384.laion2b_ft_in12k_in1k", patchSize: 16, embedDim: 768,
            depth: 12, heads: 12, imageSize: 384)
        clipLaion.preNorm = true
        clipLaion.normEps = 1e-5
        clipLaion.mean = ImageNormalization.clipMean
        clipLaion.std = ImageNormalization.clipStd
        list.append(clipLaion)
        // timm 1.0.31 vision_transformer.py: `vit_base_patch16_clip_224` (line 3785) sets no
        // act_layer, so VisionTransformer's default nn.GELU (exact, line 842) applies, and that is
        // what DVT loads for `vit_base_patch16_clip_224.openai` (its cfg, line 2599, notes
        // "natively QuickGELU, use quickgelu model variant for original results").
        // `vit_base_patch16_clip_quickgelu_224` (line 3928) sets act_layer='quick_gelu'; its
        // `.openai` tag is generated from the notes (`_quick_gelu_cfgs`, line 3334).
        var clipOpenAI = clipLaion
        clipOpenAI.name = "vit_base_patch16_clip_224.openai"
        clipOpenAI.imageSize = 224
        list.append(clipOpenAI)
        var clipQuickGelu = clipOpenAI
        clipQuickGelu.name = "vit_base_patch16_clip_quickgelu_224.openai"
        clipQuickGelu.activation = .quickGelu
        list.append(clipQuickGelu)
        // DeiT-III
        var deit3 = ViTConfig(name: "deit3_base_patch16_224.fb_in1k", patchSize: 16, embedDim: 768, depth: 12, heads: 12, imageSize: 224)
        deit3.noEmbedClass = true
        deit3.layerScale = true
        list.append(deit3)
        // Supervised AugReg
        var augreg = ViTConfig(
            name: "vit_base_patch16_384.augreg_in21k_ft_in1k", patchSize: 16, embedDim: 768, depth: 12,
            heads: 12, imageSize: 384)
        augreg.mean = ImageNormalization.inceptionMean
        augreg.std = ImageNormalization.inceptionStd
        list.append(augreg)
        return list + ViTPresets.families

    }()

    /// The preset for a timm name. Accepts the name with or without its pretrained tag
    /// (`vit_small_patch14_dinov2` finds `vit_small_patch14_dinov2.lvd142m`).
    public static func named(_ name: String) -> ViTConfig? {
        all.first { $0.name == name } ?? all.first { $0.name.split(separator: ".").first.map(String.init) == name }
    }

    public static var names: [String] { all.map(\.name) }
}
