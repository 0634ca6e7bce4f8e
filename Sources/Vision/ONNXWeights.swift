import Foundation
import ONNX
import TensorCore

// ViT weights out of an ONNX model that torch.onnx exported from a Hugging Face transformers
// module. The exporter keeps a parameter's state-dict name when it stores the parameter as it
// is, and gives a generated name (`onnx::MatMul_1966`) to every tensor it had to change first:
//   - each nn.Linear weight, stored transposed as MatMul's right operand, [in, out];
//   - the position embedding, constant-folded into the two slices the forward reads, the class
//     row [1, 1, C] and the patch grid [1, N, C] (transformers' `interpolate_pos_encoding`).
// The nodes that consume those tensors keep the module path in their names
// (`/backbone/encoder/layer.3/mlp/fc1/MatMul`), which is what names them back.

/// torch.onnx exports of transformers ViTs → transformers state-dict names.
public enum ONNXCheckpointNames {
    /// The suffix that marks a transformers ViT trunk's patch embedding (Dinov2Model, ViTModel,
    /// Dinov2WithRegistersModel keep their conv here).
    static let anchor = "embeddings.patch_embeddings.projection.weight"

    /// The trunk's tensors under transformers names, with the wrapper's prefix (`backbone.` in
    /// a model that wraps Dinov2Model as `self.backbone`) removed, linear weights back in torch's
    /// [out, in] order and the position embedding as one [1, 1 + N, C] tensor. Tensors outside
    /// the trunk (a task head, a decoder) are left out. Anything inside the trunk that cannot be
    /// named is an error naming the file and the tensor.
    public static func transformersStateDict(_ model: ONNXModel) throws -> (tensors: [String: Tensor], prefix: String) {
        let file = model.path
        let anchors = model.graph.initializer.map(\.name).filter { $0 == anchor || $0.hasSuffix("." + anchor) }
        guard anchors.count == 1, let found = anchors.first else {
            throw WeightFileError(
                anchors.isEmpty
                    ? "\(file): no ViT trunk with transformers names found: no initializer named '…\(anchor)' (dvt reads ONNX files that torch.onnx exported from a transformers Dinov2Model / ViTModel, or from a module that wraps one)"
                    : "\(file): \(anchors.count) ViT trunks found (\(anchors.joined(separator: ", "))); dvt reads one")
        }
        let prefix = String(found.dropLast(anchor.count))  // "backbone." or ""
        // Node names spell the module path with "/" ("/backbone/encoder/layer.0/…").
        let nodePrefix = "/" + prefix.split(separator: ".").joined(separator: "/") + (prefix.isEmpty ? "" : "/")
        let uses = model.uses()
        var out: [String: Tensor] = [:]
        var classPosition: Tensor?, gridPosition: Tensor?
        for t in model.graph.initializer {
            // A state-dict name: kept when it lies under the trunk's prefix, else another module's.
            if !t.name.hasPrefix("onnx::") && !t.name.hasPrefix("/") {
                guard t.name.hasPrefix(prefix) else { continue }
                let key = String(t.name.dropFirst(prefix.count))
                guard out[key] == nil else { throw WeightFileError("\(file): initializer '\(t.name)' appears twice") }
                out[key] = try ONNXTensor.decode(t, file: file)
                continue
            }
            // A generated name. Shape constants and tensors used only outside the trunk play no
            // part in the ViT.
            let isFloat = [1, 10, 11, 16].contains(t.dataType)  // FLOAT, FLOAT16, DOUBLE, BFLOAT16
            let inTrunk = (uses[t.name] ?? []).filter { $0.node.hasPrefix(nodePrefix) }
            guard isFloat, !inTrunk.isEmpty else { continue }
            let use = inTrunk[0]
            let dims = t.dims.map { Int($0) }
            func unmappable(_ why: String) -> WeightFileError {
                WeightFileError("\(file): cannot name initializer '\(t.name)' (dims \(dims)) used by node '\(use.node)' (\(use.opType)): \(why)")
            }
            if inTrunk.count == 1, use.opType == "MatMul", use.inputIndex == 1, dims.count == 2, use.node.hasSuffix("/MatMul") {
                // "/backbone/encoder/layer.0/mlp/fc1/MatMul" → "encoder.layer.0.mlp.fc1.weight", [in, out] → [out, in].
                let module = use.node.dropFirst(nodePrefix.count).dropLast("/MatMul".count).replacingOccurrences(of: "/", with: ".")
                let key = module + ".weight"
                guard !module.isEmpty, out[key] == nil else { throw unmappable("its name '\(key)' is already taken") }
                out[key] = try ONNXTensor.decode(t, file: file).transpose(0, 1)
            } else if inTrunk.allSatisfy({ $0.node.hasPrefix(nodePrefix + "embeddings/") }), dims.count == 3, dims[0] == 1 {
                // transformers' interpolate_pos_encoding: position_embeddings[:, :1] and [:, 1:].
                if dims[1] == 1 {
                    guard classPosition == nil else { throw unmappable("a second class-position row") }
                    classPosition = try ONNXTensor.decode(t, file: file)
                } else {
                    let side = Int(Double(dims[1]).squareRoot().rounded())
                    guard side * side == dims[1], gridPosition == nil else {
                        throw unmappable(gridPosition == nil ? "\(dims[1]) position rows are not a square grid" : "a second position grid")
                    }
                    gridPosition = try ONNXTensor.decode(t, file: file)
                }
            } else {
                throw unmappable("it is neither a linear weight (MatMul's second input) nor a slice of the position embedding")
            }
        }
        switch (classPosition, gridPosition) {
        case (nil, nil): break
        case let (cls?, grid?):
            guard out["embeddings.position_embeddings"] == nil, cls.shape[2] == grid.shape[2] else {
                throw WeightFileError(
                    "\(file): position embedding slices [1, 1, \(cls.shape[2])] and \(grid.shape) do not fit together, or a named position_embeddings exists too"
                )
            }
            out["embeddings.position_embeddings"] = Tensor.concat([cls, grid], axis: 1)  // (1, 1 + N, C)
        case let (cls, grid):
            throw WeightFileError(
                "\(file): found the \(cls == nil ? "patch-grid" : "class-row") slice of the position embedding but not the \(cls == nil ? "class-row [1, 1, C]" : "patch-grid [1, N, C]") one"
            )
        }
        return (out, prefix)
    }
}

extension VisionTransformer {
    /// A ViT from a torch.onnx export of a transformers Dinov2Model / Dinov2WithRegistersModel
    /// (or of a module wrapping one): names recovered from the graph (`ONNXCheckpointNames`),
    /// mapped to timm's by `HFCheckpointNames`, the position embedding resampled as that
    /// transformers class does (Dinov2: bicubic without antialias, which is also what the
    /// exported graph's `Resize` node computes: cubic, a = −0.75, half_pixel, to the token
    /// grid) unless `resample` overrides it. The architecture is `preferred` when the weights'
    /// shapes fit it, else the first preset that fits them.
    public convenience init(onnx url: URL, preferred: ViTConfig, resample: PositionResampling? = nil) throws {
        let model = try ONNXModel(contentsOf: url)
        let (hf, _) = try ONNXCheckpointNames.transformersStateDict(model)
        let timm = try HFCheckpointNames.dinov2ToTimm(hf, source: url.path)
        guard var cfg = ViTPresets.fitting(timm, preferred: preferred) else {
            throw WeightFileError("\(url.path): no ViT preset fits these weights (\(ViTPresets.shapeSummary(timm))); see `dvt models`")
        }
        let registers = hf.keys.contains { $0.hasSuffix("embeddings.register_tokens") }
        // modeling_dinov2_with_registers.py resamples with antialias, modeling_dinov2.py without.
        cfg.positionResampling = resample ?? (registers ? .bicubicAntialias : .bicubic)
        try self.init(config: cfg, stateDict: timm.filter { !VisionTransformer.isIgnoredKey($0.key) }, source: url.path)
        weightsOrigin =
            "transformers \(registers ? TransformersLayout.dinov2WithRegisters.rawValue : TransformersLayout.dinov2.rawValue) (ONNX export)"
        positionResamplingChosenBy = resample == nil ? "auto" : "config"
    }
}

extension ViTPresets {
    /// Whether a timm state dict has the shapes of `c`: patch embedding (C, 3, P, P), block
    /// count, class and register tokens, layer scale, the MLP's kind and the position grid's
    /// presence.
    static func fits(_ c: ViTConfig, _ sd: [String: Tensor]) -> Bool {
        guard let patch = sd["patch_embed.proj.weight"], patch.shape == [c.embedDim, 3, c.patchSize, c.patchSize] else { return false }
        let depth = Set(
            sd.keys.compactMap { k -> Int? in
                let parts = k.split(separator: ".")
                return parts.count > 2 && parts[0] == "blocks" ? Int(parts[1]) : nil
            }
        ).count
        let registers = sd["reg_token"]?.shape[1] ?? 0
        let layerScale = sd["blocks.0.ls1.gamma"] != nil || sd["blocks.0.gamma_1"] != nil
        let mlp: ViTMlp =
            sd["blocks.0.mlp.fc1_g.weight"] != nil
            ? .swiglu
            : (sd["blocks.0.mlp.fc1.weight"].map { $0.shape[0] == 2 * (sd["blocks.0.mlp.fc2.weight"]?.shape[1] ?? -1) } ?? false)
                ? .swigluPacked : .mlp
        return depth == c.depth && registers == c.registerTokens && (sd["cls_token"] != nil) == c.classToken
            && layerScale == c.layerScale && mlp == c.mlp && (sd["pos_embed"] != nil) == c.absolutePositionEmbedding
    }

    /// `preferred` when the state dict fits it, else the first preset that does.
    static func fitting(_ sd: [String: Tensor], preferred: ViTConfig) -> ViTConfig? {
        fits(preferred, sd) ? preferred : all.first { fits($0, sd) }
    }

    /// The shapes `fits` reads, for an error message.
    static func shapeSummary(_ sd: [String: Tensor]) -> String {
        let blocks = Set(
            sd.keys.compactMap { k -> Int? in
                let p = k.split(separator: ".")
                return p.count > 2 && p[0] == "blocks" ? Int(p[1]) : nil
            }
        ).count
        return
            "patch_embed.proj.weight \(sd["patch_embed.proj.weight"]?.shape ?? []), \(blocks) blocks, registers \(sd["reg_token"]?.shape[1] ?? 0), layer scale \(sd["blocks.0.ls1.gamma"] != nil)"
    }
}
