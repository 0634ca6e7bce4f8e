import DVT
import Formats
import Foundation
import ONNXExport
import Vision

/// `dvt export`: a denoiser, from a stage-2 training checkpoint or any file `--denoiser` reads,
/// written as official-layout safetensors, the official .pth, or an ONNX graph.
public enum DenoiserExport {
    public enum Format: String, CaseIterable, Sendable {
        case safetensors, pth, onnx
    }

    /// `explicit` when given, else from the extension of `out` (.onnx, .pth/.pt, else
    /// safetensors). An explicit format that contradicts a known extension is an error, so a
    /// file is never written under another format's name.
    public static func format(for out: URL, explicit: String?) throws -> Format {
        let ext = out.pathExtension.lowercased()
        let implied: Format? = ext == "onnx" ? .onnx : (ext == "pth" || ext == "pt") ? .pth : ext == "safetensors" ? .safetensors : nil
        guard let explicit else { return implied ?? .safetensors }
        guard let f = Format(rawValue: explicit) else {
            throw DenoiserError("--format must be one of \(Format.allCases.map(\.rawValue).joined(separator: ", ")); got \(explicit)")
        }
        if let implied, implied != f {
            throw DenoiserError(
                "--format \(f.rawValue) contradicts --out \(out.lastPathComponent) (a .\(ext) file is \(implied.rawValue)); use a matching extension")
        }
        return f
    }

    /// The denoiser in `url` and its provenance: a stage-2 training checkpoint (safetensors with
    /// `model.*` tensors), else an exported safetensors or an official .pth.
    public static func load(_ url: URL) throws -> (Denoiser, provenance: [String: String]) {
        if try WeightFiles.format(of: url) == .safetensors,
            try SafeTensorsFile(url: url).keys.contains(where: { $0.hasPrefix("model.") })
        {
            return try Stage2Runner.loadCheckpoint(url)
        }
        let denoiser = try Denoiser.load(url)
        // An exported safetensors carries its architecture and provenance; keep the provenance.
        let architectureKeys: Set<String> = [
            "format", "architecture", "feature_dim", "num_blocks", "num_heads", "enable_pe",
            "noise_map_height", "noise_map_width", "key_layout",
        ]
        let provenance = try WeightFiles.metadata(url).filter { !architectureKeys.contains($0.key) }
        return (denoiser, provenance)
    }

    /// Loads `source` and writes it to `out` in `format` (atomically). Returns the denoiser.
    @discardableResult
    public static func run(source: URL, out: URL, format: Format, toolkit: String) throws -> Denoiser {
        let (denoiser, provenance) = try load(source)
        switch format {
        case .safetensors: try denoiser.export(to: out, format: .safetensors, provenance: provenance)
        case .pth: try denoiser.export(to: out, format: .pth, provenance: provenance)
        case .onnx:
            let graph = OnnxExport.denoiserGraph(
                denoiser, sourceSHA256: try SHA256Digest.hex(file: source),
                provenance: .init(toolkit: toolkit, extra: provenance))
            try OnnxExport.write(graph, to: out)
        }
        return denoiser
    }
}

/// `dvt export-extractor`: one ONNX graph from an image to its denoised ViT features.
public struct ExtractorExport {
    public var model: VisionTransformer
    /// Weights file of the ViT (nil with random weights), for its sha256.
    public var weights: URL?
    public var layer: Int
    public var stride: Int?
    /// Fixed input size, or nil for dynamic H, W.
    public var inputSize: (Int, Int)?
    public var denoiserFile: URL

    public init(model: VisionTransformer, weights: URL?, layer: Int, stride: Int?, inputSize: (Int, Int)?, denoiserFile: URL) {
        self.model = model
        self.weights = weights
        self.layer = layer
        self.stride = stride
        self.inputSize = inputSize
        self.denoiserFile = denoiserFile
    }

    /// Builds and writes the graph; returns the denoiser it holds.
    @discardableResult
    public func run(out: URL, toolkit: String) throws -> Denoiser {
        try OnnxViTSupport.check(model.config)
        guard model.precision == .fp32 else {
            throw OnnxExportError(
                "--precision \(model.precision.rawValue): the ONNX graph is float32; choose reduced precision in the runtime that loads it")
        }
        if let (h, w) = inputSize {
            try InputGeometry.validate(height: h, width: w, stride: stride, model: model.config, batch: 1, names: .flags)
        }
        let (denoiser, provenance) = try DenoiserExport.load(denoiserFile)
        var extra: [String: String] = [:]
        for (k, v) in provenance { extra["denoiser_" + k] = v }
        let graph = try OnnxExport.extractorGraph(
            vit: model, layer: layer, stride: stride, inputSize: inputSize, denoiser: denoiser,
            vitSHA256: try weights.map { try SHA256Digest.hex(file: $0) }, denoiserSHA256: try SHA256Digest.hex(file: denoiserFile),
            provenance: .init(toolkit: toolkit, extra: extra))
        try OnnxExport.write(graph, to: out)
        return denoiser
    }
}
