// Presets of the ViT families beyond timm's plain VisionTransformer, each read from timm 1.0.31
// (timm/models/vision_transformer.py "vt", timm/models/eva.py "eva"; line numbers of 1.0.31).
// Every one runs through the same VisionTransformer / ViTBlock; only ViTConfig differs.

extension ViTPresets {
    static let families: [ViTConfig] = {
        var list: [ViTConfig] = []
        // DINOv2 giant (vt lines 4190, 4246; cfgs 2255, 2281): ViT-g/14 with timm's SwiGLUPacked MLP,
        // mlp_ratio 2.66667·2 (fc1 out int(1536·5.33334) = 8192 = 2·4096), layer scale.
        for reg in [false, true] {
            var g = ViTConfig(
                name: "vit_giant_patch14_\(reg ? "reg4_" : "")dinov2.lvd142m", patchSize: 14,
                embedDim: 1536, depth: 40, heads: 24, imageSize: 518)
            g.layerScale = true
            g.mlp = .swigluPacked
            g.mlpRatio = 2.66667 * 2
            if reg { g.registerTokens = 4; g.noEmbedClass = true }
            list.append(g)
        }
        // EVA-02 CLIP B/16 (eva line 2231, cfg 1722): separate q/k/v (qkv_fused=False; k has no
        // bias), sub-LN before proj (scale_attn_inner), split SwiGLU with sub-LN (scale_mlp),
        // mlp_ratio 4·2/3, abs pos-embed plus RoPE 'cat' with ref_feat_shape (16, 16), cls token,
        // timm LayerNorm eps 1e-6, OpenAI CLIP mean/std (eva `_cfg`, line 1470).
        var eva = ViTConfig(
            name: "eva02_base_patch16_clip_224.merged2b", patchSize: 16, embedDim: 768, depth: 12,
            heads: 12, imageSize: 224)
        eva.separateQKV = true
        eva.attentionNorm = true
        eva.mlp = .swiglu
        eva.mlpRatio = 4.0 * 2 / 3
        eva.rope = .eva(referenceGrid: [16, 16], temperature: 10000)
        eva.evaLayerScaleKeys = true
        eva.mean = ImageNormalization.clipMean
        eva.std = ImageNormalization.clipStd
        list.append(eva)
        // DINOv3 (eva lines 3008, 3124, 3180; cfgs 1951, 1963, 1978, 1984, `_dinov3_cfg` 1510): Eva
        // with RoPE 'dinov3' (temperature 100, rotate-half), no abs pos-embed, cls + 4 registers,
        // layer scale (gamma_1/gamma_2), qkv without bias, LayerNorm eps 1e-5, GELU Mlp, 256 px.
        func dinov3(_ size: String, _ dim: Int, _ depth: Int, _ heads: Int, tag: String = "lvd1689m") -> ViTConfig {
            var c = ViTConfig(
                name: "vit_\(size)_patch16_dinov3.\(tag)", patchSize: 16, embedDim: dim, depth: depth,
                heads: heads, imageSize: 256)
            c.qkvBias = false
            c.layerScale = true
            c.evaLayerScaleKeys = true
            c.rope = .dinov3(temperature: 100)
            c.absolutePositionEmbedding = false
            c.registerTokens = 4
            c.normEps = 1e-5
            return c
        }
        list.append(dinov3("small", 384, 12, 6))
        list.append(dinov3("base", 768, 12, 12))
        list.append(dinov3("large", 1024, 24, 16))
        var sat = dinov3("large", 1024, 24, 16, tag: "sat493m")
        sat.mean = [0.430, 0.411, 0.296]
        sat.std = [0.213, 0.156, 0.143]
        list.append(sat)
        // SigLIP B/16 (vt line 4329, cfg 2755): no class token (class_token=False), MAP
        // attention-pool head (`attn_pool.*`, not part of the dense features and not loaded),
        // exact GELU, eps 1e-6, Inception mean/std (vt `_cfg`).
        var siglip = ViTConfig(
            name: "vit_base_patch16_siglip_224.webli", patchSize: 16, embedDim: 768, depth: 12,
            heads: 12, imageSize: 224)
        siglip.classToken = false
        siglip.mean = ImageNormalization.inceptionMean
        siglip.std = ImageNormalization.inceptionStd
        list.append(siglip)
        return list
    }()
}

extension ViTConfig {
    /// What sets this architecture apart, for `dvt models`: MLP, attention, positions, tokens.
    public var familySummary: String {
        var parts: [String] = []
        switch mlp {
        case .mlp: parts.append(activation == .quickGelu ? "QuickGELU MLP" : "GELU MLP")
        case .swigluPacked: parts.append("SwiGLU (packed)")
        case .swiglu: parts.append("SwiGLU (split, sub-LN)")
        }
        if separateQKV { parts.append("q/k/v (no k bias)") }
        if !qkvBias && !separateQKV { parts.append("qkv no bias") }
        if attentionNorm { parts.append("attn sub-LN") }
        if layerScale { parts.append("layer scale") }
        if preNorm { parts.append("norm_pre") }
        switch rope {
        case .eva?: parts.append("RoPE (EVA-02)")
        case .dinov3?: parts.append("RoPE (DINOv3)")
        case nil: break
        }
        if absolutePositionEmbedding { parts.append(noEmbedClass ? "pos_embed (patches only)" : "pos_embed") }
        if !classToken { parts.append("no class token") }
        return parts.joined(separator: ", ")
    }
}
