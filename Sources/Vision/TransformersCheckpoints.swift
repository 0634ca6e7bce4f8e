import Formats
import Foundation
import TensorCore

// Hugging Face transformers checkpoints of the ViT families, renamed into timm's
// `VisionTransformer` / `Eva` names so that one ViT class runs them all. Each mapping below
// cites the transformers module that owns the weights (transformers 5.25.0, file:line of
// src/transformers/models/…); the math of each family is already in ViTConfig/ViTBlock, so a
// mapping only renames, fuses q/k/v into timm's packed `qkv`, and reshapes embeddings.
// Letters: C hidden size, N position rows, R register tokens.

/// The transformers model classes whose weights load as a ViT, by config.json `model_type`.
public enum TransformersLayout: String, Sendable, CaseIterable, Codable {
    /// `Dinov2Model` (model_type "dinov2").
    case dinov2
    /// `Dinov2WithRegistersModel` (model_type "dinov2_with_registers").
    case dinov2WithRegisters = "dinov2_with_registers"
    /// `DINOv3ViTModel` (model_type "dinov3_vit").
    case dinov3 = "dinov3_vit"
    /// `ViTModel` (model_type "vit"; also the non-distilled DeiT checkpoints).
    case vit
    /// `DeiTModel` (model_type "deit": a distillation token beside the class token).
    case deit
    /// `CLIPVisionModel` (model_type "clip_vision_model", or the vision half of "clip").
    case clip = "clip_vision_model"
    /// `SiglipVisionModel` (model_type "siglip_vision_model", or the vision half of "siglip";
    /// SigLIP 2's fixed-resolution checkpoints are this class too).
    case siglip = "siglip_vision_model"

    /// The layout of a config.json `model_type`; the two-tower types ("clip", "siglip") name
    /// their vision tower.
    public init?(modelType: String) {
        switch modelType {
        case "clip": self = .clip
        case "siglip": self = .siglip
        default: self.init(rawValue: modelType)
        }
    }
}

/// transformers names → timm names.
public enum HFCheckpointNames {
    /// Prefixes under which the transformers classes keep the vision trunk: the task heads'
    /// base-model attribute (`Dinov2ForImageClassification.dinov2`, `ViTForImageClassification.vit`,
    /// `DeiTForImageClassification.deit`), and `vision_model` of CLIPVisionModel /
    /// SiglipVisionModel (and of the two-tower CLIPModel / SiglipModel).
    static func trunkPrefixes(_ layout: TransformersLayout) -> [String] {
        switch layout {
        case .dinov2: return ["dinov2."]
        case .dinov2WithRegisters: return ["dinov2_with_registers."]
        case .dinov3: return ["dinov3_vit."]
        case .vit: return ["vit."]
        case .deit: return ["deit."]
        case .clip, .siglip: return ["vision_model."]
        }
    }

    /// Keys of the trunk with the class's prefix removed; other keys (task heads, a text tower,
    /// `logit_scale`) are dropped. A dict already without the prefix is returned unchanged.
    public static func trunk(_ dict: [String: Tensor], layout: TransformersLayout) -> [String: Tensor] {
        for p in trunkPrefixes(layout) where dict.keys.contains(where: { $0.hasPrefix(p + "embeddings.") }) {
            var out: [String: Tensor] = [:]
            for (k, v) in dict where k.hasPrefix(p) { out[String(k.dropFirst(p.count))] = v }
            return out
        }
        return dict
    }

    /// Every tensor of a transformers checkpoint in `layout` under its timm name. Tensors with
    /// no role in timm's model (`mask_token`, ViT's `pooler`, CLIP's `position_ids` buffer) are
    /// dropped; any other unknown name is an error naming `source` and the keys.
    public static func toTimm(_ dict: [String: Tensor], layout: TransformersLayout, source: String) throws -> [String: Tensor] {
        let sd = trunk(dict, layout: layout)
        var m = Mapper(sd, source: source)
        switch layout {
        case .dinov2, .dinov2WithRegisters: try m.dinov2()
        case .dinov3: try m.dinov3()
        case .vit, .deit: try m.vit()
        case .clip: try m.clip()
        case .siglip: try m.siglip()
        }
        return try m.finish(layout)
    }

    /// `Dinov2Model` / `Dinov2WithRegistersModel` names (no `dinov2.` or `backbone.` prefix,
    /// linear weights as torch stores them, [out, in]) → timm names. Registers are told by
    /// `embeddings.register_tokens`.
    public static func dinov2ToTimm(_ dict: [String: Tensor], source: String) throws -> [String: Tensor] {
        let layout: TransformersLayout = dict.keys.contains { $0.hasSuffix("embeddings.register_tokens") } ? .dinov2WithRegisters : .dinov2
        return try toTimm(dict, layout: layout, source: source)
    }
}

/// Moves tensors from an HF dict into a timm dict, consuming each source key once, so leftovers
/// are exactly the unmapped names.
struct Mapper {
    var src: [String: Tensor]
    var out: [String: Tensor] = [:]
    let source: String

    init(_ src: [String: Tensor], source: String) {
        self.src = src
        self.source = source
    }

    mutating func take(_ key: String) throws -> Tensor {
        guard let t = src.removeValue(forKey: key) else {
            throw WeightFileError("\(source): transformers checkpoint has no '\(key)'")
        }
        return t
    }

    mutating func move(_ from: String, _ to: String) throws { out[to] = try take(from) }

    /// `from.weight`/`.bias` → `to.weight`/`.bias` (bias when present).
    mutating func linear(_ from: String, _ to: String) throws {
        try move(from + ".weight", to + ".weight")
        if let b = src.removeValue(forKey: from + ".bias") { out[to + ".bias"] = b }
    }

    /// Separate q/k/v projections → timm's packed `qkv` ([q; k; v] rows, as timm's Attention
    /// splits `qkv(x)` into q, k, v in that order). Biases: all three or none, except that
    /// with `keyBiasOptional` (DINOv3's `key_bias=False`) a missing key bias is zeros.
    mutating func qkv(_ q: String, _ k: String, _ v: String, to: String, keyBiasOptional: Bool = false) throws {
        let ws = try [q, k, v].map { try take($0 + ".weight") }
        for w in ws where w.rank != 2 || w.shape != ws[0].shape {
            throw WeightFileError("\(source): \(q).weight / \(k).weight / \(v).weight shapes \(ws.map(\.shape)) differ or are not 2-D")
        }
        out[to + ".weight"] = Tensor.concat(ws, axis: 0)  // (3C, C)
        let bs = [q, k, v].map { src.removeValue(forKey: $0 + ".bias") }
        let required =
            keyBiasOptional
            ? [bs[0] != nil || bs[2] != nil, false, bs[0] != nil || bs[2] != nil] : Array(repeating: bs.contains { $0 != nil }, count: 3)
        for (name, (b, need)) in zip([q, k, v], zip(bs, required)) where need && b == nil {
            throw WeightFileError("\(source): transformers checkpoint has no '\(name).bias' (the other projections have biases)")
        }
        if bs.contains(where: { $0 != nil }) {
            let c = ws[0].shape[0]
            for (name, b) in zip([q, k, v], bs) where b != nil && b!.shape != [c] {
                throw WeightFileError("\(source): \(name).bias has shape \(b!.shape), expected [\(c)]")
            }
            out[to + ".bias"] = Tensor.concat(bs.map { $0 ?? Tensor(zeros: [c]) }, axis: 0)  // (3C)
        }
    }

    /// Block `h`'s self-attention → timm's `t`attn.qkv and `t`attn.proj, under the transformers 5
    /// module names (`attention.{q,k,v,o}_proj`) or the saved checkpoint names
    /// (`attention.attention.{query,key,value}`, `attention.output.dense`) of ViT/DeiT and DINOv2.
    mutating func attention(_ h: String, _ t: String, moduleNames: Bool) throws {
        if moduleNames {
            try qkv(h + "attention.q_proj", h + "attention.k_proj", h + "attention.v_proj", to: t + "attn.qkv")
            try linear(h + "attention.o_proj", t + "attn.proj")
        } else {
            try qkv(h + "attention.attention.query", h + "attention.attention.key", h + "attention.attention.value", to: t + "attn.qkv")
            try linear(h + "attention.output.dense", t + "attn.proj")
        }
    }

    /// Block indices present under `prefix` ("encoder.layer." → 0, 1, …), checked contiguous.
    func blockIndices(_ prefix: String) throws -> [Int] {
        var seen = Set<Int>()
        for k in src.keys where k.hasPrefix(prefix) {
            let rest = k.dropFirst(prefix.count)
            if let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) { seen.insert(i) }
        }
        let sorted = seen.sorted()
        guard sorted == Array(0..<sorted.count) else {
            throw WeightFileError("\(source): blocks under '\(prefix)' are not numbered 0..<n: \(sorted.prefix(8))")
        }
        return sorted
    }

    // MARK: families

    /// modeling_dinov2.py: `Dinov2Embeddings` (lines 71-85: cls_token, mask_token,
    /// patch_embeddings.projection, position_embeddings over cls + patches; registers in
    /// modeling_dinov2_with_registers.py line 89), `Dinov2Layer` (lines 294-328: norm1,
    /// attention, layer_scale1.lambda1, norm2, mlp, layer_scale2.lambda1, pre-norm residuals as
    /// timm's Block) and the final `layernorm` (line 391, applied to every token, line 415).
    /// Both name sets are read: the checkpoint names that `save_pretrained` writes and the Hub
    /// holds (`attention.attention.{query,key,value}`, `attention.output.dense`, SwiGLU
    /// `mlp.weights_in`/`weights_out`), and the module names of transformers 5
    /// (`attention.{q,k,v,o}_proj`, lines 189-192; SwiGLU `mlp.{gate,up,down}_proj`, lines
    /// 260-262), which conversion_mapping.py lines 613-646 rename between. SwiGLU is
    /// `down(silu(gate(x)) · up(x))` (line 266) and `weights_in` is [gate; up] (the Chunk(dim=0)
    /// of conversion_mapping.py lines 618-622): timm's `SwiGLUPacked` fc1, silu on the first half.
    mutating func dinov2() throws {
        try move("embeddings.cls_token", "cls_token")
        src["embeddings.mask_token"] = nil  // masked-image-modelling input; unused at inference
        try move("embeddings.position_embeddings", "pos_embed")
        try linear("embeddings.patch_embeddings.projection", "patch_embed.proj")
        if let reg = src.removeValue(forKey: "embeddings.register_tokens") { out["reg_token"] = reg }
        for i in try blockIndices("encoder.layer.") {
            let h = "encoder.layer.\(i).", t = "blocks.\(i)."
            try linear(h + "norm1", t + "norm1")
            try attention(h, t, moduleNames: src[h + "attention.q_proj.weight"] != nil)
            try move(h + "layer_scale1.lambda1", t + "ls1.gamma")
            try linear(h + "norm2", t + "norm2")
            if src[h + "mlp.gate_proj.weight"] != nil {
                try packed(h + "mlp.gate_proj", h + "mlp.up_proj", to: t + "mlp.fc1")
                try linear(h + "mlp.down_proj", t + "mlp.fc2")
            } else if src[h + "mlp.weights_in.weight"] != nil {
                try linear(h + "mlp.weights_in", t + "mlp.fc1")
                try linear(h + "mlp.weights_out", t + "mlp.fc2")
            } else {
                try linear(h + "mlp.fc1", t + "mlp.fc1")
                try linear(h + "mlp.fc2", t + "mlp.fc2")
            }
            try move(h + "layer_scale2.lambda1", t + "ls2.gamma")
        }
        try linear("layernorm", "norm")
        // With registers, transformers adds the position embedding to [cls, patches] and then
        // inserts the registers after cls (modeling_dinov2_with_registers.py lines 144-150), so
        // the registers carry no position: timm's reg4 layout (no_embed_class, the class
        // token's position folded into cls_token), as TimmCheckpointNames.fromDINOv2Hub does.
        if out["reg_token"] != nil { try foldClassPosition() }
    }

    /// Two linears stacked into one (rows of `a`, then rows of `b`), weights and biases.
    mutating func packed(_ a: String, _ b: String, to: String) throws {
        let wa = try take(a + ".weight"), wb = try take(b + ".weight")
        guard wa.rank == 2, wb.rank == 2, wa.shape[1] == wb.shape[1] else {
            throw WeightFileError("\(source): \(a).weight \(wa.shape) and \(b).weight \(wb.shape) cannot be stacked")
        }
        out[to + ".weight"] = Tensor.concat([wa, wb], axis: 0)
        switch (src.removeValue(forKey: a + ".bias"), src.removeValue(forKey: b + ".bias")) {
        case let (ba?, bb?): out[to + ".bias"] = Tensor.concat([ba, bb], axis: 0)
        case (nil, nil): break
        default: throw WeightFileError("\(source): only one of \(a).bias and \(b).bias is present")
        }
    }

    /// cls_token += pos_embed[:, :1]; pos_embed = pos_embed[:, 1:].
    mutating func foldClassPosition() throws {
        guard let cls = out["cls_token"], let pos = out["pos_embed"], pos.rank == 3, pos.shape[0] == 1, pos.shape[1] >= 2,
            cls.shape == [1, 1, pos.shape[2]]
        else {
            throw WeightFileError(
                "\(source): with register tokens, cls_token must be (1, 1, C) and the position embeddings (1, 1 + T, C); got \(out["cls_token"]?.shape ?? []) and \(out["pos_embed"]?.shape ?? [])"
            )
        }
        let (n, c) = (pos.shape[1], pos.shape[2])
        let rows = pos.reshape([n, c])  // (1 + T, C)
        out["cls_token"] = (cls.reshape([1, c]) + rows.slice(axis: 0, 0..<1)).reshape([1, 1, c])
        out["pos_embed"] = rows.slice(axis: 0, 1..<n).reshape([1, n - 1, c])  // (1, T, C)
    }

    /// Leftover keys are an error; the result is the timm dict.
    func finish(_ layout: TransformersLayout) throws -> [String: Tensor] {
        guard src.isEmpty else {
            let left = src.keys.sorted()
            throw WeightFileError(
                "\(source): \(left.count) tensor(s) of the \(layout.rawValue) checkpoint have no timm name: \(left.prefix(8).joined(separator: ", "))\(left.count > 8 ? ", …" : "")"
            )
        }
        return out
    }

    /// A linear whose bias the checkpoint leaves out when `hasBias` is false (`proj_bias` /
    /// `mlp_bias` false in DINOv3ViTConfig): timm's Linear always has one, so it is zeros then.
    mutating func linearZeroBias(_ from: String, _ to: String, hasBias: Bool) throws {
        let w = try take(from + ".weight")
        out[to + ".weight"] = w
        out[to + ".bias"] = hasBias ? try take(from + ".bias") : Tensor(zeros: [w.shape[0]])
    }

    /// modeling_dinov3_vit.py: `DINOv3ViTEmbeddings` (lines 68-74: cls_token, mask_token,
    /// register_tokens, the `patch_embeddings` conv itself; tokens [cls, registers, patches],
    /// line 90), RoPE on the patch tokens only (`apply_rotary_pos_emb`, lines 245-275; tables as
    /// timm's 'dinov3' RoPE, see ViTRope), `DINOv3ViTLayer` (norm1, attention.{q,k,v,o}_proj with
    /// per-projection biases, layer_scale1, norm2, mlp.{up,down}_proj or the gated
    /// mlp.{gate,up,down}_proj, layer_scale2), and the final `norm`. Layers sit under `layer.N`
    /// in saved files and `model.layer.N` in the module (the encoder is `self.model`).
    mutating func dinov3() throws {
        try move("embeddings.cls_token", "cls_token")
        src["embeddings.mask_token"] = nil
        if let reg = src.removeValue(forKey: "embeddings.register_tokens"), reg.rank == 3, reg.shape[1] > 0 { out["reg_token"] = reg }
        try linear("embeddings.patch_embeddings", "patch_embed.proj")
        let prefix = src.keys.contains { $0.hasPrefix("model.layer.") } ? "model.layer." : "layer."
        // `proj_bias` / `mlp_bias` hold for every layer: read them off block 0.
        let projBias = src[prefix + "0.attention.o_proj.bias"] != nil
        let mlpBias = src[prefix + "0.mlp.down_proj.bias"] != nil
        for i in try blockIndices(prefix) {
            let h = "\(prefix)\(i).", t = "blocks.\(i)."
            try linear(h + "norm1", t + "norm1")
            try qkv(h + "attention.q_proj", h + "attention.k_proj", h + "attention.v_proj", to: t + "attn.qkv", keyBiasOptional: true)
            try linearZeroBias(h + "attention.o_proj", t + "attn.proj", hasBias: projBias)
            try move(h + "layer_scale1.lambda1", t + "gamma_1")
            try linear(h + "norm2", t + "norm2")
            if src[h + "mlp.gate_proj.weight"] != nil {
                try packed(h + "mlp.gate_proj", h + "mlp.up_proj", to: t + "mlp.fc1")
            } else {
                try linearZeroBias(h + "mlp.up_proj", t + "mlp.fc1", hasBias: mlpBias)
            }
            try linearZeroBias(h + "mlp.down_proj", t + "mlp.fc2", hasBias: mlpBias)
            try move(h + "layer_scale2.lambda1", t + "gamma_2")
        }
        try linear("norm", "norm")
    }

    /// modeling_vit.py / modeling_deit.py: `ViTEmbeddings` (lines 80-84: cls_token, mask_token,
    /// patch_embeddings.projection, position_embeddings over cls + patches) or `DeiTEmbeddings`
    /// (lines 83-92: also `distillation_token`, positions over cls + distillation + patches,
    /// line 153), `ViTLayer` (lines 257-263: layernorm_before, attention, layernorm_after, mlp;
    /// pre-norm residuals as timm's Block), final `layernorm` (line 347) and the `pooler` (a
    /// tanh head on the class token, not a feature). Saved names `encoder.layer.N.attention.
    /// attention.{query,key,value}`, `attention.output.dense`, `intermediate.dense`,
    /// `output.dense`, and the transformers 5 module names `layers.N.attention.{q,k,v,o}_proj`,
    /// `layers.N.mlp.{fc1,fc2}` (conversion_mapping.py lines 604-611).
    mutating func vit() throws {
        try move("embeddings.cls_token", "cls_token")
        if let dist = src.removeValue(forKey: "embeddings.distillation_token") { out["reg_token"] = dist }
        src["embeddings.mask_token"] = nil
        try move("embeddings.position_embeddings", "pos_embed")
        try linear("embeddings.patch_embeddings.projection", "patch_embed.proj")
        for k in src.keys where k.hasPrefix("pooler.") { src[k] = nil }
        let v5 = src.keys.contains { $0.hasPrefix("layers.") }
        for i in try blockIndices(v5 ? "layers." : "encoder.layer.") {
            let h = v5 ? "layers.\(i)." : "encoder.layer.\(i).", t = "blocks.\(i)."
            try linear(h + "layernorm_before", t + "norm1")
            try attention(h, t, moduleNames: v5)
            try linear(h + (v5 ? "mlp.fc1" : "intermediate.dense"), t + "mlp.fc1")
            try linear(h + (v5 ? "mlp.fc2" : "output.dense"), t + "mlp.fc2")
            try linear(h + "layernorm_after", t + "norm2")
        }
        try linear("layernorm", "norm")
    }

    /// The encoder layers of CLIP and SigLIP (modeling_clip.py lines 353-360, modeling_siglip.py
    /// 325-332): layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.{fc1,fc2}.
    mutating func clipLayers() throws {
        for i in try blockIndices("encoder.layers.") {
            let h = "encoder.layers.\(i).", t = "blocks.\(i)."
            try linear(h + "layer_norm1", t + "norm1")
            try qkv(h + "self_attn.q_proj", h + "self_attn.k_proj", h + "self_attn.v_proj", to: t + "attn.qkv")
            try linear(h + "self_attn.out_proj", t + "attn.proj")
            try linear(h + "layer_norm2", t + "norm2")
            try linear(h + "mlp.fc1", t + "mlp.fc1")
            try linear(h + "mlp.fc2", t + "mlp.fc2")
        }
    }

    /// (N, C) `nn.Embedding` weight → timm's (1, N, C) `pos_embed`.
    mutating func positionTable(_ key: String) throws {
        let w = try take(key)
        guard w.rank == 2 else { throw WeightFileError("\(source): \(key) has shape \(w.shape), expected (positions, C)") }
        out["pos_embed"] = w.reshape([1, w.shape[0], w.shape[1]])
    }

    /// modeling_clip.py `CLIPVisionEmbeddings` (lines 146-159: `class_embedding` (C), the
    /// bias-free `patch_embedding` conv, `position_embedding` (N, C) over cls + patches, the
    /// `position_ids` buffer) and `CLIPVisionModel` (lines 594-597: `pre_layrnorm` before the
    /// encoder = timm's norm_pre, `post_layernorm` = timm's final norm). transformers applies
    /// post_layernorm to the pooled class token only (line 641): its `last_hidden_state` is
    /// the features without the final norm.
    mutating func clip() throws {
        let cls = try take("embeddings.class_embedding")
        guard cls.rank == 1 else { throw WeightFileError("\(source): embeddings.class_embedding has shape \(cls.shape), expected (C)") }
        out["cls_token"] = cls.reshape([1, 1, cls.shape[0]])
        try move("embeddings.patch_embedding.weight", "patch_embed.proj.weight")
        try positionTable("embeddings.position_embedding.weight")
        src["embeddings.position_ids"] = nil
        try linear("pre_layrnorm", "norm_pre")
        try clipLayers()
        try linear("post_layernorm", "norm")
    }

    /// The MAP head's shapes (kept for export, not run, so the ViT's strict load never sees
    /// them): latent (1, 1, C), q (C, C), kv (2C, C), proj (C, C), norm (C), mlp (H, C), (C, H).
    func checkAttentionPool(_ c: Int) throws {
        guard let h = out["attn_pool.mlp.fc1.weight"]?.shape.first else { return }
        let want: [String: [Int]] = [
            "attn_pool.latent": [1, 1, c], "attn_pool.q.weight": [c, c], "attn_pool.q.bias": [c],
            "attn_pool.kv.weight": [2 * c, c], "attn_pool.kv.bias": [2 * c], "attn_pool.proj.weight": [c, c],
            "attn_pool.proj.bias": [c], "attn_pool.norm.weight": [c], "attn_pool.norm.bias": [c],
            "attn_pool.mlp.fc1.weight": [h, c], "attn_pool.mlp.fc1.bias": [h], "attn_pool.mlp.fc2.weight": [c, h],
            "attn_pool.mlp.fc2.bias": [c],
        ]
        for (k, shape) in want.sorted(by: { $0.key < $1.key }) where out[k]?.shape != shape {
            throw WeightFileError("\(source): the MAP head's \(k) has shape \(out[k]?.shape ?? []), expected \(shape)")
        }
    }

    /// modeling_siglip.py `SiglipVisionEmbeddings` (lines 124-135: `patch_embedding` conv with
    /// bias, `position_embedding` (N, C) over the patches only; no class token), the encoder,
    /// `post_layernorm` on every token (line 611, timm's final norm), and the MAP head `head`
    /// (`SiglipMultiheadAttentionPoolingHead`, lines 621-630), kept under timm's `attn_pool`
    /// names: probe → latent, the nn.MultiheadAttention `in_proj` [q; k; v] split into q and kv,
    /// out_proj → proj, layernorm → norm, mlp as is (the same math as timm's AttentionPoolLatent).
    mutating func siglip() throws {
        try linear("embeddings.patch_embedding", "patch_embed.proj")
        try positionTable("embeddings.position_embedding.weight")
        src["embeddings.position_ids"] = nil
        try clipLayers()
        try linear("post_layernorm", "norm")
        if src["head.probe"] != nil {
            try move("head.probe", "attn_pool.latent")
            let w = try take("head.attention.in_proj_weight"), b = try take("head.attention.in_proj_bias")
            guard w.rank == 2, w.shape[0] % 3 == 0, b.shape == [w.shape[0]] else {
                throw WeightFileError("\(source): head.attention.in_proj_weight \(w.shape) / in_proj_bias \(b.shape) are not a packed [q; k; v]")
            }
            let c = w.shape[0] / 3
            out["attn_pool.q.weight"] = w.slice(axis: 0, 0..<c)
            out["attn_pool.kv.weight"] = w.slice(axis: 0, c..<(3 * c))
            out["attn_pool.q.bias"] = b.slice(axis: 0, 0..<c)
            out["attn_pool.kv.bias"] = b.slice(axis: 0, c..<(3 * c))
            try linear("head.attention.out_proj", "attn_pool.proj")
            try linear("head.layernorm", "attn_pool.norm")
            try linear("head.mlp.fc1", "attn_pool.mlp.fc1")
            try linear("head.mlp.fc2", "attn_pool.mlp.fc2")
            try checkAttentionPool(c)
        }
    }
}

/// Where a transformers checkpoint lives: its config.json and its weight file.
public struct TransformersSnapshot: Sendable {
    public var configURL: URL
    public var weightsURL: URL
    /// preprocessor_config.json beside config.json (normalisation), when present.
    public var preprocessorURL: URL?

    /// Weight files `save_pretrained` writes, in the order they are looked for.
    public static let weightFileNames = ["model.safetensors", "pytorch_model.bin"]

    /// The snapshot `url` names, or nil when it is a timm checkpoint: a folder is a snapshot
    /// (config.json plus model.safetensors or pytorch_model.bin, else an error naming what is
    /// missing); a weight file is one when a config.json sits beside it and the file holds no
    /// timm patch embedding (`patch_embed.proj.weight`).
    public static func locate(_ url: URL) throws -> TransformersSnapshot? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw WeightFileError("\(url.path): cannot open the file (missing or unreadable)")
        }
        if isDir.boolValue {
            let config = url.appendingPathComponent("config.json")
            guard FileManager.default.fileExists(atPath: config.path) else {
                throw WeightFileError(
                    "\(url.path): a folder of weights must be a transformers snapshot with config.json (save_pretrained); there is none")
            }
            guard let w = weightFileNames.map({ url.appendingPathComponent($0) }).first(where: { FileManager.default.fileExists(atPath: $0.path) })
            else {
                let sharded = (try? FileManager.default.contentsOfDirectory(atPath: url.path))?.contains { $0.hasSuffix(".index.json") } ?? false
                throw WeightFileError(
                    "\(url.path): no \(weightFileNames.joined(separator: " or "))\(sharded ? " (sharded checkpoints are not supported)" : "")")
            }
            if try hasTimmNames(w) {
                // A timm Hub repository has config.json too (timm's pretrained config, no model_type).
                let arch = (try? TransformersModel.readJSON(config)).flatMap { j -> String? in
                    if case .object(let o) = j, case .string(let a)? = o["architecture"] { return a } else { return nil }
                }
                throw WeightFileError(
                    "\(url.path): a timm checkpoint folder, not a transformers snapshot; pass --weights \(w.path)\(arch.map { " --arch \($0)" } ?? " with its --arch")"
                )
            }
            return TransformersSnapshot(configURL: config, weightsURL: w, preprocessorURL: preprocessor(url))
        }
        let dir = url.deletingLastPathComponent()
        let config = dir.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: config.path) else { return nil }
        let keys: [String]
        switch try WeightFiles.format(of: url) {
        case .safetensors: keys = try SafeTensorsFile(url: url).keys
        case .torch:
            guard case .dict(let e) = TimmCheckpointNames.unwrap(try TorchArchive(url: url).root) else { return nil }
            keys = e.compactMap { if case .string(let k) = $0.key { k } else { nil } }
        case .onnx: return nil  // an ONNX model names its own tensors (ONNXCheckpointNames)
        }
        if keys.contains(where: { $0.hasSuffix("patch_embed.proj.weight") }) { return nil }
        return TransformersSnapshot(configURL: config, weightsURL: url, preprocessorURL: preprocessor(dir))
    }

    /// Whether a snapshot folder's weight file holds a timm patch embedding
    /// (`…patch_embed.proj.weight`), from its key list only; false for other formats.
    static func hasTimmNames(_ url: URL) throws -> Bool {
        let format = try WeightFiles.format(of: url)
        var names: [String] = []
        if format == .safetensors { names = try SafeTensorsFile(url: url).keys }
        if format == .torch, case .dict(let e) = TimmCheckpointNames.unwrap(try TorchArchive(url: url).root) {
            names = e.compactMap { if case .string(let k) = $0.key { k } else { nil } }
        }
        return names.contains { $0.hasSuffix("patch_embed.proj.weight") }
    }

    static func preprocessor(_ dir: URL) -> URL? {
        let p = dir.appendingPathComponent("preprocessor_config.json")
        return FileManager.default.fileExists(atPath: p.path) ? p : nil
    }

    /// The model description (config.json) and its weights under timm names.
    public func read() throws -> (model: TransformersModel, stateDict: [String: Tensor]) {
        let model = try TransformersModel.read(config: configURL, preprocessor: preprocessorURL)
        let raw = try WeightFiles.load(weightsURL).tensors
        let sd = try HFCheckpointNames.toTimm(raw, layout: model.layout, source: weightsURL.path)
        return (model, sd)
    }
}
