import DVT
import Formats
import Foundation
import TensorCore
import Vision

/// `dvt denoise`: a trained denoiser over new images (through the ViT) or over saved (H, W, C)
/// feature maps. Outputs mirror the input tree: OUT/<relative path>.npy, and with `visualize`
/// OUT/vis/<relative path>.png ([image |] raw PCA | denoised PCA | raw norms | denoised norms).
/// Every input is (re)computed: nothing is skipped.
public struct DenoiseJob {
    public var denoiser: Denoiser
    public var output: URL
    /// Maps per forward pass.
    public var batchSize = 8
    public var visualize = false
    /// Feature mode: leave out maps holding NaN or Inf with a warning instead of failing them.
    public var skipNonFinite = false
    public var quiet = false
    public var log: (String) -> Void = ImageJobEngine.standardError

    public init(denoiser: Denoiser, output: URL) {
        self.denoiser = denoiser
        self.output = output
    }

    /// The ViT side of image mode: the backbone, its block, input size and stride.
    public struct Backbone {
        public var model: VisionTransformer
        public var layer: Int
        public var inputSize: (Int, Int)
        public var stride: Int?
        /// The denoiser file's recorded ViT (`vit_model` metadata), for a mismatch warning.
        public var trainedOn: String?

        public init(model: VisionTransformer, layer: Int, inputSize: (Int, Int), stride: Int?, trainedOn: String?) {
            self.model = model
            self.layer = layer
            self.inputSize = inputSize
            self.stride = stride
            self.trainedOn = trainedOn
        }
    }

    /// Image mode: checks the backbone against the denoiser, then ViT features → denoiser.
    public func run(images items: [ImageItem], backbone b: Backbone) throws -> JobReport {
        try FileErrors.createDirectory(output)  // a plain `cannot write PATH` message, not a Foundation dump
        if let seed = b.model.randomInitSeed {
            // The .npy maps cannot carry the warning themselves; the folder does.
            try AtomicFile.write(
                Data((VisionTransformer.randomWeightsWarning(seed: seed) + "\n").utf8),
                to: output.appendingPathComponent("RANDOM_WEIGHTS_WARNING.txt"))
        }
        // backbone.json: the weights' origin and the position resampling behind these features.
        try AtomicFile.writeJSON(b.model.provenance, to: output.appendingPathComponent("backbone.json"))
        if let trained = b.trainedOn, trained != b.model.config.name {
            log("warning: the denoiser was trained on \(trained) features, but --arch is \(b.model.config.name)")
        }
        guard b.model.config.embedDim == denoiser.config.dim else {
            throw JobsError.mismatch(
                "the denoiser takes \(denoiser.config.dim)-channel features but \(b.model.config.name) has \(b.model.config.embedDim) channels")
        }
        let (gh, gw) = b.model.grid(height: b.inputSize.0, width: b.inputSize.1, stride: b.stride)
        if gh != denoiser.config.gridHeight || gw != denoiser.config.gridWidth {
            log(
                "note: feature grid \(gh)x\(gw) differs from the denoiser's \(denoiser.config.gridHeight)x\(denoiser.config.gridWidth); its position embedding is resampled bicubically"
            )
        }
        return try engine().run(ImageClient(job: self, backbone: b), items: items)
    }

    /// Feature mode: every .npy under `folder` (sorted by relative path), batched by grid.
    public func run(features folder: URL) throws -> JobReport {
        try FileErrors.createDirectory(output)  // a plain `cannot write PATH` message, not a Foundation dump
        return try engine().run(MapClient(job: self), items: try DenoiseJob.featureFiles(under: folder))
    }

    func engine() -> ImageJobEngine {
        var e = ImageJobEngine(output: output, log: log)
        e.quiet = quiet
        return e
    }

    /// The .npy files under `folder`, as items whose stem is the path below it.
    public static func featureFiles(under folder: URL) throws -> [ImageItem] {
        let root = folder.standardizedFileURL
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw JobsError.input("--features \(folder.path) is not a folder")
        }
        var files: [ImageItem] = []
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let f = e?.nextObject() as? URL {
            guard f.pathExtension.lowercased() == "npy" else { continue }
            var rel = f.standardizedFileURL.path
            if rel.hasPrefix(root.path + "/") { rel.removeFirst(root.path.count + 1) }
            files.append(ImageItem(url: f, relativeStem: (rel as NSString).deletingPathExtension))
        }
        files.sort { $0.relativeStem < $1.relativeStem }
        guard !files.isEmpty else { throw JobsError.input("no .npy files under \(root.path)") }
        return files
    }

    /// OUT/<rel>.npy, and the visual when asked.
    func write(raw: Tensor, denoised: Tensor, image: URL?, _ item: ImageItem) throws -> ImageJobOutput {
        let url = output.appendingPathComponent(item.relativeStem + ".npy")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Npy.write(denoised, to: url)
        var files = [url]
        if visualize, let png = writeVisual(raw: raw, denoised: denoised, image: image, item.relativeStem) { files.append(png) }
        return ImageJobOutput(files: files)
    }

    /// The strip of one map. A strip that cannot be drawn (e.g. fewer than 3 tokens for the
    /// PCA) is a warning, not a failed input: the features were written.
    func writeVisual(raw: Tensor, denoised: Tensor, image: URL?, _ rel: String) -> URL? {
        do {
            let strip = try DenoiseJob.strip(raw: raw, denoised: denoised, image: try image.map { try RGBImage(contentsOf: $0) })
            let url = output.appendingPathComponent("vis").appendingPathComponent(rel + ".png")
            try Visuals.write(strip, to: url)
            return url
        } catch {
            log("warning: no visual for \(rel): \(error)")
            return nil
        }
    }

    /// [image |] raw PCA | denoised PCA | raw norms | denoised norms, one token per square.
    /// The PCA basis is fitted on the denoised map and colours both, as DVT's training
    /// visuals do, so what the artifacts did to the raw map shows against a clean basis.
    public static func strip(raw: Tensor, denoised: Tensor, image: RGBImage?) throws -> RGBImage {
        let pca = try FeaturePCA(fitting: denoised)
        let (dh, dw) = Visuals.displaySize(height: raw.shape[0], width: raw.shape[1])
        var tiles = [pca.image(raw), pca.image(denoised), Visuals.normHeatmap(raw), Visuals.normHeatmap(denoised)]
            .map { Visuals.upsampleNearest($0, width: dw, height: dh) }
        if let image { tiles.insert(image.resized(width: dw, height: dh), at: 0) }
        return Visuals.hstrip(tiles)
    }

    /// Images: decode, one ViT forward and one denoiser forward per batch.
    struct ImageClient: ImageJobClient {
        let job: DenoiseJob
        let backbone: Backbone
        var label: String { "denoise" }
        var batchSize: Int { job.batchSize }
        func isDone(_ item: ImageItem) -> Bool { false }

        func prepare(_ item: ImageItem) throws -> Tensor {
            try backbone.model.preprocess(item.url, height: backbone.inputSize.0, width: backbone.inputSize.1)  // (3, H, W)
        }

        func forward(_ batch: [Tensor]) throws -> [(raw: Tensor, denoised: Tensor)] {
            let feats = backbone.model.features(
                Tensor.batched(batch), layers: [backbone.layer],
                stride: backbone.stride)[backbone.layer]!.patch  // (B, Gh, Gw, C)
            let y = job.denoiser.denoise(feats)  // (B, Gh, Gw, C)
            return Array(zip(feats.unbatched(), y.unbatched()))
        }

        func finish(_ item: ImageItem, _ image: Tensor, _ maps: (raw: Tensor, denoised: Tensor), position: Int) throws -> ImageJobOutput {
            try job.write(raw: maps.raw, denoised: maps.denoised, image: item.url, item)
        }
    }

    /// Feature maps: read and check each (H, W, C) map; a batch holds maps of one grid.
    struct MapClient: ImageJobClient {
        let job: DenoiseJob
        var label: String { "denoise" }
        var batchSize: Int { job.batchSize }
        func isDone(_ item: ImageItem) -> Bool { false }

        func prepare(_ item: ImageItem) throws -> Tensor {
            let t = try Npy.read(item.url)
            let s = t.rank == 4 && t.shape[0] == 1 ? Array(t.shape.dropFirst()) : t.shape
            guard s.count == 3, s[2] == job.denoiser.config.dim, s[0] > 0, s[1] > 0 else {
                throw Stage2Error("shape \(t.shape), expected (H, W, \(job.denoiser.config.dim))")
            }
            // One NaN would turn the whole output map NaN with exit 0: refuse it here, naming it.
            do { try t.requireFinite(item.url.path) } catch let e as NonFiniteError where job.skipNonFinite {
                throw ImageJobSkip("\(e)")
            }
            return t.reshape(s)  // (H, W, C)
        }

        func canBatch(_ next: Tensor, with first: Tensor) -> Bool { next.shape == first.shape }

        func forward(_ batch: [Tensor]) throws -> [(raw: Tensor, denoised: Tensor)] {
            Array(zip(batch, job.denoiser.denoise(Tensor.batched(batch)).unbatched()))  // B × (H, W, C)
        }

        func finish(_ item: ImageItem, _ map: Tensor, _ maps: (raw: Tensor, denoised: Tensor), position: Int) throws -> ImageJobOutput {
            try job.write(raw: maps.raw, denoised: maps.denoised, image: nil, item)
        }
    }
}
