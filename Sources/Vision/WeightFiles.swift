import Formats
import Foundation
import ONNX
import TensorCore

/// The weight-file formats, told apart by their first bytes (never by the file name).
public enum WeightFileFormat: String, Sendable {
    /// safetensors: an 8-byte little-endian header length, then a JSON object.
    case safetensors
    /// A `torch.save` zip archive (.pth / .pt / .bin): "PK".
    case torch
    /// An ONNX model (a serialised `ModelProto`): its weights are the graph's initializers.
    case onnx
}

/// Reads weight files in either format into float32 tensors.
public enum WeightFiles {
    /// The format of `url` from its magic bytes, or an error that says what the file looks like.
    public static func format(of url: URL) throws -> WeightFileFormat {
        guard let h = FileHandle(forReadingAtPath: url.path) else {
            throw WeightFileError("\(url.path): cannot open the file (missing or unreadable)")
        }
        defer { try? h.close() }
        let head = [UInt8]((try? h.read(upToCount: 16)) ?? Data())
        return try format(ofHead: head, path: url.path)
    }

    // Long on purpose: one table of magic numbers, each with the message for its file kind.
    static func format(ofHead b: [UInt8], path: String) throws -> WeightFileFormat {
        if b.count >= 4, b[0] == 0x50, b[1] == 0x4B, b[2] == 0x03, b[3] == 0x04 { return .torch }
        if b.count >= 2, b[0] == 0x80, b[1] <= 5 { return .torch }  // a legacy torch pickle: TorchArchive says so
        // safetensors: a plausible header length followed by '{'.
        if b.count >= 9, b[8] == UInt8(ascii: "{"), b[4..<8].allSatisfy({ $0 == 0 }) { return .safetensors }
        // ONNX: ModelProto's field 1 (ir_version, a small varint: tag 0x08) comes first, then
        // another ModelProto field (producer_name 0x12, …, graph 0x3A, opset_import 0x42,
        // metadata_props 0x72); every exporter writes ir_version first.
        if b.count >= 3, b[0] == 0x08, (1...0x7F).contains(b[1]),
            [0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72].contains(b[2])
        {
            return .onnx
        }
        let hex = b.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw WeightFileError(
            "\(path): unknown weight-file format (first bytes \(hex.isEmpty ? "none: empty file" : hex)); expected a safetensors file, a PyTorch .pth zip archive (torch.save, PyTorch >= 1.6) or an ONNX model"
        )
    }

    /// Every tensor of a safetensors file, or of the state dict in a torch archive, with the
    /// safetensors metadata (empty for torch files). `stateDict` picks the state dict out of the
    /// unpickled torch object (default: the object itself).
    public static func load(
        _ url: URL, stateDict: (PickleValue) -> PickleValue = { $0 },
        keep: (String) -> Bool = { _ in true }
    ) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        switch try format(of: url) {
        case .safetensors:
            let file = try SafeTensorsFile(url: url)
            var out: [String: Tensor] = [:]
            for key in file.keys where keep(key) { out[key] = try file.tensor(key) }
            return (out, file.metadata)
        case .torch:
            let archive = try TorchArchive(url: url)
            let sd = stateDict(archive.root)
            guard case .dict(let entries) = sd else {
                throw WeightFileError("\(url.path): the checkpoint holds a \(describe(sd)), not a state dict (a dict of tensors)")
            }
            let filtered = entries.filter { if case .string(let k) = $0.key { keep(k) } else { true } }
            return (try archive.tensors(in: .dict(filtered)), [:])
        case .onnx:
            // Every initializer under its own name; a ViT reads ONNX through
            // `ONNXCheckpointNames`, which also names the exporter's unnamed tensors.
            let model = try ONNXModel(contentsOf: url)
            return (try model.initializers { keep($0.name) }, model.metadata)
        }
    }

    /// The safetensors metadata of `url`, an ONNX model's `metadata_props`; empty for torch
    /// archives (they have none).
    public static func metadata(_ url: URL) throws -> [String: String] {
        switch try format(of: url) {
        case .safetensors: return try SafeTensorsFile(url: url).metadata
        case .torch: return [:]
        case .onnx: return try ONNXModel(contentsOf: url).metadata
        }
    }

    static func describe(_ v: PickleValue) -> String {
        if case .dict(let e) = v {
            return "dict with keys " + e.prefix(6).map { "\($0.key)" }.joined(separator: ", ")
        }
        return "\(v)".prefix(60).description
    }
}

/// Checkpoint-name conversions into timm's `VisionTransformer` names.
public enum TimmCheckpointNames {
    /// timm's `checkpoint_filter_fn` (timm/models/vision_transformer.py) first unwraps
    /// `state_dict.get('model', …)` then `.get('state_dict', …)`.
    public static func unwrap(_ root: PickleValue) -> PickleValue {
        var v = root
        if case .dict? = v["model"] { v = v["model"]! }
        if case .dict? = v["state_dict"] { v = v["state_dict"]! }
        return v
    }

    /// DVT's stage-3 checkpoints (`{"model": PretrainedViTWrapper.state_dict(), …}`,
    /// main_distillation.py lines 267-273) name the timm model's keys `model.<timm key>`, the
    /// wrapper's attribute (vit_wrapper.py line 108); evaluate_dense_tasks.py line 186 loads them
    /// back into the wrapper. When every key has that prefix and the rest is a ViT, it is dropped.
    public static func fromDVTWrapper(_ dict: [String: Tensor]) -> [String: Tensor] {
        guard !dict.isEmpty, dict.keys.allSatisfy({ $0.hasPrefix("model.") }),
            dict["model.patch_embed.proj.weight"] != nil
        else { return dict }
        return Dictionary(uniqueKeysWithValues: dict.map { (String($0.key.dropFirst(6)), $0.value) })
    }

    /// facebookresearch/dinov2 hub names → timm names, as timm's `_convert_dinov2` does (it is
    /// applied when the checkpoint has a `mask_token`): `mask_token` dropped; with registers,
    /// `register_tokens` → `reg_token`, the class token's position row folded into `cls_token`
    /// and dropped from `pos_embed` (timm's reg4 models use `no_embed_class`);
    /// `blocks.N.mlp.w12.*` → `fc1`, `blocks.N.mlp.w3.*` → `fc2` (SwiGLU). Other checkpoints
    /// are returned unchanged.
    public static func fromDINOv2Hub(_ dict: [String: Tensor]) throws -> [String: Tensor] {
        guard dict["mask_token"] != nil else { return dict }
        var sd = dict
        sd["mask_token"] = nil
        var out: [String: Tensor] = [:]
        if let reg = sd.removeValue(forKey: "register_tokens") {
            guard let cls = sd.removeValue(forKey: "cls_token"), let pos = sd.removeValue(forKey: "pos_embed"),
                cls.rank == 3, pos.rank == 3, pos.shape[0] == 1, pos.shape[1] >= 1, cls.shape == [1, 1, pos.shape[2]]
            else {
                throw WeightFileError("DINOv2 hub checkpoint with register_tokens needs cls_token (1, 1, C) and pos_embed (1, 1 + T, C)")
            }
            let (n, c) = (pos.shape[1], pos.shape[2])
            let rows = pos.reshape([n, c])  // (1 + T, C)
            out["reg_token"] = reg
            out["cls_token"] = (cls.reshape([1, c]) + rows.slice(axis: 0, 0..<1)).reshape([1, 1, c])
            out["pos_embed"] = rows.slice(axis: 0, 1..<n).reshape([1, n - 1, c])  // (1, T, C)
        }
        for (k, v) in sd {
            if let renamed = swigluRename(k) { out[renamed] = v } else { out[k] = v }
        }
        return out
    }

    /// `blocks.<digits>.mlp.w12.(weight|bias)…` → fc1 and `w3` → fc2, the prefix match of timm's
    /// `re.match` followed by its `k.replace(...)` (which replaces every occurrence).
    static func swigluRename(_ key: String) -> String? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0] == "blocks", !parts[1].isEmpty, parts[1].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isNumber),
            parts[2] == "mlp", parts[4].hasPrefix("weight") || parts[4].hasPrefix("bias")
        else { return nil }
        switch parts[3] {
        case "w12": return key.replacingOccurrences(of: "w12", with: "fc1")
        case "w3": return key.replacingOccurrences(of: "w3", with: "fc2")
        default: return nil
        }
    }
}
