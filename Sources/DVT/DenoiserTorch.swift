import Formats
import Foundation
import TensorCore
import Vision

// PyTorch checkpoints of the official DVT denoiser, read and written.
//
// main_denoiser.py (its checkpoint block) saves {"denoiser": state dict without "vit.*" keys,
// "optimizer": AdamW state, "step": int} with torch.save; evaluate_dense_tasks.py
// (--load-denoiser-from) loads torch.load(path)["denoiser"] non-strictly, ignoring the "vit.model"
// keys of the wrapped ViT. We do the same: unwrap "denoiser" when present (else the file is taken
// as a bare state dict), drop "vit.*", ignore everything else in the file.

/// The file formats `dvt export` writes.
public enum DenoiserFileFormat: String, Sendable, CaseIterable {
    /// safetensors with the architecture and provenance in the metadata (our default).
    case safetensors
    /// A torch.save zip archive {"denoiser": state dict}, as the official code loads it.
    case pth

    /// `explicit` when given (must name a case), else pth for a `.pth`/`.pt` output, else safetensors.
    public static func forOutput(_ url: URL, explicit: String?) throws -> DenoiserFileFormat {
        let ext = url.pathExtension.lowercased()
        let name = explicit ?? (ext == "pth" || ext == "pt" ? "pth" : "safetensors")
        guard let f = DenoiserFileFormat(rawValue: name) else {
            throw DenoiserError("format must be one of \(allCases.map(\.rawValue).joined(separator: ", ")); got \(name)")
        }
        return f
    }
}

extension Denoiser {
    /// The state dict inside an official stage-2 checkpoint, or the object itself.
    static func officialStateDict(_ root: PickleValue) -> PickleValue {
        if case .dict? = root["denoiser"] { return root["denoiser"]! }
        return root
    }

    /// Loads a denoiser from safetensors or a .pth (format from the magic bytes). A .pth carries
    /// no metadata, so the architecture comes from the shapes: C from the norms, the blocks from
    /// the keys, pos_embed on or off, the grid square from pos_embed (as timm infers it).
    static func loadAnyFormat(_ url: URL) throws -> Denoiser {
        let isTorch = try WeightFiles.format(of: url) == .torch
        var (dict, metadata) = try WeightFiles.load(url, stateDict: officialStateDict, keep: { !$0.hasPrefix("vit.") })
        if isTorch && dict["pos_embed"] == nil {
            // Without a position embedding the native grid has no role in the computation.
            metadata["noise_map_height"] = "1"
            metadata["noise_map_width"] = "1"
        }
        return try Denoiser(stateDict: dict, metadata: metadata, source: url.path)
    }

    /// The bytes of a .pth in the official layout: {"denoiser": state dict}, float32, keys in
    /// parameter order, readable by `torch.load(path, weights_only=True)`.
    public func torchCheckpoint(archiveName: String = "archive") throws -> Data {
        let entries = namedParameters().map { ($0.0, TorchWriter.Value.tensor($0.1)) }
        return try TorchWriter.serialize(.dict([("denoiser", .dict(entries))]), archiveName: archiveName)
    }

    /// Writes `torchCheckpoint()` atomically.
    public func exportTorch(to url: URL) throws {
        let name = url.deletingPathExtension().lastPathComponent
        try AtomicFile.write(try torchCheckpoint(archiveName: name.isEmpty || name.contains("/") ? "archive" : name), to: url)
    }

    /// Writes in `format` (safetensors keeps `provenance` in its metadata; .pth has nowhere to).
    public func export(to url: URL, format: DenoiserFileFormat, provenance: [String: String] = [:]) throws {
        switch format {
        case .safetensors: try export(to: url, provenance: provenance)
        case .pth: try exportTorch(to: url)
        }
    }
}
