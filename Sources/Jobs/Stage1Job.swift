import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import Training
import Vision

// `dvt stage1`: DVT stage 1 over an image list. Letters: V views, Gh × Gw grid, C channels.

/// Stage 1 over a list of images: ViT features of random views, the per-image fit, and the
/// raw / denoised feature files. Images whose outputs exist are skipped, so a killed job rerun
/// continues where it stopped; every file is written atomically.
public final class Stage1Job {
    public let config: ResolvedConfig
    public let model: VisionTransformer
    public let settings: Stage1Settings
    public let layer: Int
    public let tree: RunPaths
    public var quiet = false
    /// Write G and h(raw) of each image even without stage1.save_extras (`dvt run` does, for the
    /// report's decomposition strip; they are two maps the size of the raw one).
    public var saveDecomposition = false
    /// Receives progress and per-image lines (default: stderr).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public init(config: ResolvedConfig, model: VisionTransformer) throws {
        self.config = config
        self.model = model
        settings = config.settings.stage1
        try settings.validate()
        // input_size and stride_size against this model (the views go through it `forwardBatch` at a time).
        let size = InputGeometry.inputSize(
            config.settings.run.inputSize,
            stride: InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize))
        try InputGeometry.validate(height: size.0, width: size.1, stride: config.settings.run.strideSize, model: model.config, batch: Stage1Job.forwardBatch)
        layer = try Stage1Job.layer(config: config, model: model)
        if let prior = settings.sharedArtifactsPrior {
            // Checked before the first image's forwards: the prior must be this model's (h, w, C).
            let grid = model.grid(
                height: size.0, width: size.1, stride: InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize))
            _ = try Stage1.sharedArtifactsPrior(URL(fileURLWithPath: prior), height: grid.0, width: grid.1, dim: model.config.embedDim)
        }
        tree = RunPaths(root: URL(fileURLWithPath: config.settings.run.outputDir), model: config.settings.run.model)
    }

    /// The block a config selects: `layer_depth_ratio` when set (`depthRatioLayer`), else
    /// `layer` (negative counts from the end).
    public static func layer(config: ResolvedConfig, model: VisionTransformer) throws -> Int {
        if let ratio = config.settings.run.layerDepthRatio {
            return depthRatioLayer(ratio, depth: model.config.depth)
        }
        return try model.resolveLayer(config.settings.run.layer)
    }

    /// DVT's block for a depth ratio: int(ratio · last_layer_index) with last_layer_index =
    /// depth − 1 (main_img_denoising.py line 241, dvt/models/vit_wrapper.py lines 101-103);
    /// Python's int() truncates toward zero.
    public static func depthRatioLayer(_ ratio: Double, depth: Int) -> Int {
        Int((ratio * Double(depth - 1)).rounded(.towardZero))
    }

    var inputSize: (Int, Int) { InputGeometry.inputSize(config.settings.run.inputSize, stride: stride) }
    var stride: Int { InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize) }

    /// A stable per-image seed: the run seed mixed with the image's relative path (FNV-1a), so
    /// an image gets the same views and init whatever shard or order it runs in.
    public static func imageSeed(_ seed: Int, _ stem: String) -> UInt64 {
        FNV1a.hash(utf8: stem) ^ UInt64(seed)
    }

    /// One image's views before any is rendered: the resized image (3, H, W) in [0, 1], the
    /// `num_views` random views plus the whole image (last), and their token coordinates
    /// (V+1, Gh, Gw, 2).
    public struct ViewPlan {
        public var base: Tensor
        public var views: [ViewSampler.View]
        public var coords: Tensor
    }

    var sampler: ViewSampler {
        let (h, w) = inputSize
        let grid = model.grid(height: h, width: w, stride: stride)
        var sampler = ViewSampler(size: (h, w), grid: (grid.0, grid.1))
        sampler.horizontalFlip = true
        return sampler
    }

    /// The decoded image and its `num_views` random views plus the whole image (not rendered).
    public func plan(_ url: URL, seed: UInt64) throws -> ViewPlan {
        plan(base: try base(url), seed: seed)
    }

    /// The image at the input size, before normalisation: (3, H, W) in [0, 1].
    func base(_ url: URL) throws -> Tensor {
        let (h, w) = inputSize
        let image = try RGBImage(contentsOf: url)
        // DVT's base image: torchvision `transforms.Resize(input_size)` on a PIL image, i.e. Pillow
        // bilinear (main_img_denoising.py line 283); the dataset's later bicubic F.resize to the same
        // size returns early (dvt/dataset/single_image_dataset.py lines 33-37).
        return (image.width == w && image.height == h ? image : Resize.pilBilinear(image, width: w, height: h)).tensor()  // (3, H, W)
    }

    /// The views of a base image (3, H, W) from `base(_:)` (not rendered).
    func plan(base: Tensor, seed: UInt64) -> ViewPlan {
        let (h, w) = inputSize
        var rng = RandomGenerator(seed: seed)
        let sampler = self.sampler
        let views = sampler.plan(count: config.settings.stage1.numViews, imageHeight: h, imageWidth: w, rng: &rng)
        return ViewPlan(base: base, views: views, coords: sampler.coordinates(views, imageHeight: h, imageWidth: w))
    }

    /// The decoded image's `num_views` random views plus the whole image, normalised:
    /// (V+1, 3, H, W), and their token coordinates (V+1, Gh, Gw, 2).
    public func views(_ url: URL, seed: UInt64) throws -> (images: Tensor, coords: Tensor) {
        let p = try plan(url, seed: seed)
        return (sampler.render(p.base, views: p.views, mean: model.config.mean, std: model.config.std), p.coords)
    }

    /// Views rendered and stored per block: the int8 view storage standardises its channels by
    /// the first block written (`FeatureRows`), so this count is part of what int8 stores.
    static let viewBatch = 8

    /// Views per ViT forward. Two rather than eight: a ViT-B/14 518² forward of eight views makes
    /// activations above the allocator's 32 MiB mmap threshold, which are mapped and page-cleared
    /// afresh on every use (measured, docs/speed.md: 1.00-1.09 s a view at eight, 0.85-0.88 s at
    /// two or one). The features do not change with it: a fixed-seed stage 1 writes the same
    /// bytes at eight and at two (cmp, ViT-S/14, fp32).
    static let forwardBatch = 2

    /// ViT features of views (V+1, 3, H, W) → (V+1, Gh, Gw, C), `forwardBatch` views per forward.
    public func features(ofViews images: Tensor) -> Tensor {
        let n = images.shape[0], batch = Stage1Job.forwardBatch
        let parts = Swift.stride(from: 0, to: n, by: batch).map { start in
            model.features(
                images.slice(axis: 0, start..<min(n, start + batch)), layers: [layer], norm: true,
                stride: stride)[layer]!.patch  // (b, Gh, Gw, C)
        }
        return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
    }

    /// ViT features of a plan's views, rendered `viewBatch` at a time and run through
    /// `features(ofViews:)` (so the same values), straight into rows of `stage1.view_features_dtype`:
    /// (V+1)·Gh·Gw rows of C, and the whole image's (Gh, Gw, C) features in fp32. No tensor of
    /// every view's pixels or fp32 features exists.
    public func features(of plan: ViewPlan) -> (rows: FeatureRows, lastView: Tensor) {
        let n = plan.views.count, (gh, gw) = (plan.coords.shape[1], plan.coords.shape[2])
        var rows: FeatureRows? = nil
        var last: Tensor? = nil
        let sampler = self.sampler
        for start in Swift.stride(from: 0, to: n, by: Stage1Job.viewBatch) {
            let end = min(n, start + Stage1Job.viewBatch)
            let images = sampler.render(plan.base, views: Array(plan.views[start..<end]), mean: model.config.mean, std: model.config.std)
            let f = features(ofViews: images)  // (b, Gh, Gw, C)
            let c = f.shape[3]
            if rows == nil { rows = FeatureRows(rows: n * gh * gw, cols: c, element: settings.viewFeaturesDtype) }
            rows!.setRows(start * gh * gw, from: f)
            if end == n { last = withNoGrad { f.slice(axis: 0, (end - start - 1)..<(end - start)) }.reshape([gh, gw, c]) }
        }
        return (rows!, last!)
    }

    /// Raw features of `num_views` random views plus the whole image as rows
    /// ((V+1)·Gh·Gw, C) in `stage1.view_features_dtype`, the whole image's (Gh, Gw, C) fp32
    /// features, and the token coordinates (V+1, Gh, Gw, 2).
    public func viewFeatures(_ url: URL, seed: UInt64) throws -> (rows: FeatureRows, lastView: Tensor, coords: Tensor) {
        let p = try plan(url, seed: seed)
        let (rows, last) = features(of: p)
        return (rows, last, p.coords)
    }

    /// Runs stage 1 on `items`; returns what happened to each.
    public func run(items: [ImageItem]) throws -> JobReport {
        let out = tree.root
        var engine = ImageJobEngine(output: out, log: log)
        engine.manifest = out.appendingPathComponent("stage1_manifest.jsonl")
        engine.claims = true
        engine.quiet = quiet
        engine.progressEvery = 1
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try AtomicFile.write(Data(config.yaml.utf8), to: out.appendingPathComponent("stage1_config.yaml"))
        if let seed = model.randomInitSeed {
            try AtomicFile.write(
                Data((VisionTransformer.randomWeightsWarning(seed: seed) + "\n").utf8),
                to: out.appendingPathComponent("RANDOM_WEIGHTS_WARNING.txt"))
        }
        // backbone.json: the weights' origin and the position resampling behind these features.
        try AtomicFile.writeJSON(model.provenance, to: out.appendingPathComponent("backbone.json"))
        return try engine.run(Client(job: self), items: items)
    }

    /// The engine's view of stage 1: one image at a time (its views are the batch), the fit, the
    /// files. Done = the denoised file and an ok manifest line both exist (a kill between the two
    /// redoes the image).
    struct Client: ImageJobClient {
        let job: Stage1Job
        var label: String { "stage1" }
        var batchSize: Int { 1 }

        func isDone(_ item: ImageItem) -> Bool { FileManager.default.fileExists(atPath: job.tree.denoised(item.relativeStem).path) }

        func prepare(_ item: ImageItem) throws -> ViewPlan {
            try job.plan(item.url, seed: Stage1Job.imageSeed(job.config.settings.run.seed, item.relativeStem))
        }

        func forward(_ batch: [ViewPlan]) throws -> [(rows: FeatureRows, lastView: Tensor)] {
            batch.map { job.features(of: $0) }
        }

        func finish(
            _ item: ImageItem, _ prepared: ViewPlan, _ raw: (rows: FeatureRows, lastView: Tensor),
            position: Int
        ) throws -> ImageJobOutput {
            let s = job.config.settings.stage1
            let seed = Stage1Job.imageSeed(job.config.settings.run.seed, item.relativeStem)
            Tensor.releaseCachedMemory()  // the ViT's weight copies and freed temporaries (remade by the next image's forwards)
            let result = try Stage1.fit(
                rows: raw.rows, lastView: raw.lastView, coords: prepared.coords, settings: job.settings,
                seed: seed, label: "stage1 \(item.relativeStem)", quiet: true, printFreq: s.printFreq,
                precision: job.config.settings.run.precision)
            let viewShape = Array(prepared.coords.shape.dropLast()) + [raw.rows.cols]  // (V+1, Gh, Gw, C)
            let files = try job.write(
                result.output, item: item, views: { raw.rows.copyRows(0..<raw.rows.rows).reshape(viewShape) },
                visual: s.visEvery > 0 && position % s.visEvery == 0)
            var record: [String: Any] = ["final_loss": result.finalLoss, "ms_per_step": result.msPerStep]
            for (k, v) in result.lastMetrics { record[k] = v }
            return ImageJobOutput(files: files, record: record)
        }
    }

    /// raw and denoised (always), G / h / views (with save_extras), the visual strip.
    @discardableResult
    func write(_ o: Stage1Output, item: ImageItem, views: () -> Tensor, visual: Bool) throws -> [URL] {
        let stem = item.relativeStem
        var files: [URL] = []
        func put(_ t: Tensor, _ url: URL) throws {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(t, to: url)
            files.append(url)
        }
        if config.settings.stage1.saveExtras || saveDecomposition {
            try put(o.sharedArtifacts, tree.extra("shared_artifacts", stem))
            if let r = o.residual { try put(r, tree.extra("residual", stem)) }
        }
        if config.settings.stage1.saveExtras { try put(views(), tree.extra("view_features", stem)) }  // as held for the fit (view_features_dtype)
        if visual {
            let url = tree.visual("stage1", stem)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let (h, w) = inputSize
            let image = try RGBImage(contentsOf: item.url)
            try Stage1Job.strip(
                input: image.resized(width: w, height: h), raw: o.raw, denoised: o.denoised,
                artifacts: o.sharedArtifacts
            ).write(to: url)
            files.append(url)
        }
        // raw first, denoised last: the denoised file's presence marks the image complete.
        try put(o.raw, tree.raw(stem))
        try put(o.denoised, tree.denoised(stem))
        return files
    }

    /// input | raw PCA | denoised PCA | G PCA | norms of raw, denoised and G (one PCA basis for
    /// raw and denoised so colours compare).
    public static func strip(input: RGBImage, raw: Tensor, denoised: Tensor, artifacts: Tensor) throws -> RGBImage {
        let (th, tw) = Visuals.displaySize(height: raw.shape[0], width: raw.shape[1])
        let pca = try FeaturePCA(fitting: [raw, denoised])
        let g = try FeaturePCA(fitting: artifacts)
        let rawNorm = Visuals.norms(raw), denNorm = Visuals.norms(denoised)
        let lo = min(rawNorm.scalars.min() ?? 0, denNorm.scalars.min() ?? 0)
        let hi = max(rawNorm.scalars.max() ?? 1, denNorm.scalars.max() ?? 1)
        let tiles = [
            input.resized(width: tw, height: th),
            Visuals.upsampleNearest(pca.image(raw), width: tw, height: th),
            Visuals.upsampleNearest(pca.image(denoised), width: tw, height: th),
            Visuals.upsampleNearest(g.image(artifacts), width: tw, height: th),
            Visuals.upsampleNearest(Visuals.heatmap(rawNorm, range: (lo, hi)), width: tw, height: th),
            Visuals.upsampleNearest(Visuals.heatmap(denNorm, range: (lo, hi)), width: tw, height: th),
            Visuals.upsampleNearest(Visuals.normHeatmap(artifacts), width: tw, height: th),
        ]
        return Visuals.hstrip(tiles)
    }
}
