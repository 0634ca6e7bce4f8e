import DVT
import Formats
import Foundation
import TensorCore
import Vision

/// An export that cannot be written: names the model, file or limit at fault.
public struct OnnxExportError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// The two ONNX exports: the denoiser alone (features → denoised features) and the whole
/// extractor (image → ViT features → denoised features). Both are opset 18, float32, with every
/// weight inside the file under its source name, and provenance in metadata_props.
public enum OnnxExport {
    /// The operator set both graphs use: LayerNormalization (17) and Resize with `antialias` (18).
    public static let opset = 18
    /// Protobuf messages cannot exceed 2 GiB; weights beyond that would need ONNX external data.
    static let maxInitializerBytes = 2_000_000_000

    /// Where an export came from, for metadata_props.
    public struct Provenance: Sendable {
        /// The toolkit that wrote the file, e.g. "dvt 0.1.0".
        public var toolkit: String
        /// Entries to record as they are (e.g. the stage-2 run's vit_model, layer, input size).
        public var extra: [String: String]
        public init(toolkit: String, extra: [String: String] = [:]) {
            self.toolkit = toolkit
            self.extra = extra
        }
    }

    /// Names of the graphs' inputs and outputs (docs/formats.md).
    public enum Names {
        public static let features = "features"
        public static let denoised = "denoised"
        public static let image = "image"
        public static let raw = "raw_features"
    }

    /// The denoiser graph: input `features` (B, H, W, C) with B, H, W dynamic, output `denoised`
    /// of the same shape. Weights named as in the official layout (`pos_embed`, `denoiser.*`).
    public static func denoiserGraph(_ d: Denoiser, sourceSHA256: String, provenance: Provenance) -> OnnxGraphBuilder {
        var g = OnnxGraphBuilder(name: "dvt_denoiser")
        let c = d.config.dim
        let dims: [OnnxDimension] = [.named("batch"), .named("height"), .named("width"), .fixed(c)]
        let x = g.input(Names.features, dims: dims)
        g.output(g.denoiser(x, d), as: Names.denoised, dims: dims)
        var meta = provenance.extra
        for (k, v) in d.metadata() where k != "format" { meta[k] = v }
        meta["format"] = "dvt-denoiser-onnx-1"
        meta["graph"] = "features (B, H, W, C) float32, any H, W -> denoised (B, H, W, C)"
        meta["position_embedding_resampling"] = OnnxResampling.antialiased
        meta["toolkit"] = provenance.toolkit
        meta["source_sha256"] = sourceSHA256
        // The ViT side as the source recorded it (a stage-2 run records both).
        meta["input_size"] =
            meta["input_size"].map { "\($0) (ViT input of the training features); graph: any token grid" }
            ?? "any token grid (H, W dynamic); ViT input not recorded in the source"
        meta["layer"] = meta["layer"] ?? meta["layer_depth_ratio"].map { "depth ratio \($0)" } ?? "not recorded in the source"
        for key in meta.keys.sorted() { g.metadata(key, meta[key]!) }
        return g
    }

    /// The extractor graph: input `image` (B, 3, H, W), RGB scaled to [0, 1] (already resized:
    /// the 8-bit Pillow resize stays outside the graph), outputs `denoised` and `raw_features`,
    /// both (B, Gh, Gw, C). H and W are fixed when `inputSize` is given, else dynamic.
    public static func extractorGraph(
        vit: VisionTransformer, layer: Int, stride: Int?, inputSize: (Int, Int)?,
        denoiser d: Denoiser, vitSHA256: String?, denoiserSHA256: String,
        provenance: Provenance
    ) throws -> OnnxGraphBuilder {
        let cfg = vit.config
        try OnnxViTSupport.check(cfg)
        guard cfg.embedDim == d.config.dim else {
            throw OnnxExportError("the denoiser takes \(d.config.dim)-channel features but \(cfg.name) has \(cfg.embedDim) channels")
        }
        let s = stride ?? cfg.patchSize
        var g = OnnxGraphBuilder(name: "dvt_extractor")
        let hw: [OnnxDimension]
        let gridDims: [OnnxDimension]
        if let (h, w) = inputSize {
            hw = [.fixed(h), .fixed(w)]
            let (gh, gw) = vit.grid(height: h, width: w, stride: s)
            gridDims = [.fixed(gh), .fixed(gw)]
        } else {
            hw = [.named("height"), .named("width")]
            gridDims = [.named("grid_height"), .named("grid_width")]
        }
        let image = g.input(Names.image, dims: [.named("batch"), .fixed(3)] + hw)
        let raw = try g.vit(image, vit, layer: layer, stride: s, norm: true)
        let outDims: [OnnxDimension] = [.named("batch")] + gridDims + [.fixed(cfg.embedDim)]
        g.output(g.denoiser(raw, d), as: Names.denoised, dims: outDims)
        g.output(raw, as: Names.raw, dims: outDims)

        var meta = provenance.extra
        for (k, v) in d.metadata() where k != "format" { meta["denoiser_" + k] = v }
        meta["format"] = "dvt-extractor-onnx-1"
        meta["graph"] =
            "image (B, 3, H, W) float32 RGB in [0, 1] (pixel / 255, resized beforehand) -> ImageNet-style normalisation "
            + "(mean/std below) -> \(cfg.name) blocks 0...\(layer) -> final norm -> patch tokens (B, Gh, Gw, C) = raw_features -> denoiser -> denoised"
        meta["architecture"] =
            "\(cfg.name): \(cfg.familySummary); patch \(cfg.patchSize), stride \(s), dim \(cfg.embedDim), "
            + "\(cfg.heads) heads, \(cfg.prefixTokens) prefix token(s); + DVT denoiser"
        meta["vit_model"] = cfg.name
        meta["layer"] = String(layer)
        meta["stride"] = String(s)
        meta["final_norm"] = "true"
        meta["mean"] = cfg.mean.map { String($0) }.joined(separator: ",")
        meta["std"] = cfg.std.map { String($0) }.joined(separator: ",")
        meta["input_size"] = inputSize.map { "\($0.0)x\($0.1)" } ?? "dynamic (each side >= \(cfg.patchSize))"
        meta["position_embedding_resampling"] =
            "ViT: " + OnnxResampling.describe(cfg.positionResampling)
            + (vit.positionResamplingChosenBy == "auto" ? "" : " (chosen by \(vit.positionResamplingChosenBy))")
            + ". Denoiser: " + OnnxResampling.antialiased
        meta["toolkit"] = provenance.toolkit
        meta["vit_source_sha256"] = vitSHA256 ?? "none: random weights (--random-init)"
        meta["denoiser_source_sha256"] = denoiserSHA256
        if let seed = vit.randomInitSeed { meta["warning"] = VisionTransformer.randomWeightsWarning(seed: seed) }
        for key in meta.keys.sorted() { g.metadata(key, meta[key]!) }
        return g
    }

    /// Serialises `graph` and writes it atomically (no partial file on failure).
    public static func write(_ graph: OnnxGraphBuilder, to url: URL) throws {
        guard graph.initializerBytes <= maxInitializerBytes else {
            throw OnnxExportError(
                String(
                    format: "%@: the weights take %.2f GB, more than a single protobuf file can hold (2 GB); "
                        + "ONNX external data is not supported by this exporter", url.path, Double(graph.initializerBytes) / 1e9))
        }
        try OnnxModelWriter.write(graph, opset: opset, to: url)
    }
}
