import DVT
import Formats
import Foundation
import NN
import Report
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
    /// Receives progress and per-image lines (default: stderr).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public init(config: ResolvedConfig, model: VisionTransformer) throws {
        self.config = config
        self.model = model
        settings = Stage1Settings(config: config)
        try settings.validate()
        // input_size and stride_size against this model (the views go through it 8 at a time).
        let size = InputGeometry.inputSize(config.settings.run.inputSize,
                                           stride: InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize))
        try InputGeometry.validate(height: size.0, width: size.1, stride: config.settings.run.strideSize, model: model.config, batch: 8)
        layer = try Stage1Job.layer(config: config, model: model)
        tree = RunPaths(root: URL(fileURLWithPath: config.settings.run.outputDir!), model: config.settings.run.model!)
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
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in stem.utf8 { h = (h ^ UInt64(b)) &* 0x0100_0000_01b3 }
        return h ^ UInt64(seed)
    }

    /// Raw features of `num_views` random views plus the whole image: (V+1, Gh, Gw, C) and
    /// their token coordinates (V+1, Gh, Gw, 2).
    public func viewFeatures(_ url: URL, seed: UInt64) throws -> (Tensor, Tensor) {
        let (h, w) = inputSize
        let image = try RGBImage(contentsOf: url)
        // DVT's base image: torchvision `transforms.Resize(input_size)` on a PIL image, i.e. Pillow
        // bilinear (main_img_denoising.py line 283); the dataset's later bicubic F.resize to the same
        // size returns early (dvt/dataset/single_image_dataset.py lines 33-37).
        let base = (image.width == w && image.height == h ? image : Resize.pilBilinear(image, width: w, height: h)).tensor()  // (3, H, W)
        let grid = model.grid(height: h, width: w, stride: stride)
        var sampler = ViewSampler(size: (h, w), grid: (grid.0, grid.1))
        sampler.horizontalFlip = true
        var rng = RandomGenerator(seed: seed)
        let views = config.settings.stage1.numViews
        let (images, coords) = sampler.sample(base, count: views, mean: model.config.mean, std: model.config.std, rng: &rng)
        let c = model.config.embedDim, per = 3 * h * w
        let raw = Tensor(zeros: [views + 1, grid.0, grid.1, c])  // (V+1, Gh, Gw, C)
        let batch = 8
        var start = 0
        while start <= views {
            let n = min(batch, views + 1 - start)
            let chunk = Tensor(zeros: [n, 3, h, w])
            (chunk.ptr).update(from: images.ptr + start * per, count: n * per)
            let f = model.features(chunk, layers: [layer], norm: true, stride: stride)[layer]!.patch  // (n, Gh, Gw, C)
            (raw.ptr + start * grid.0 * grid.1 * c).update(from: f.ptr, count: f.count)
            start += n
        }
        return (raw, coords)
    }

    /// Runs stage 1 on `items`; returns what happened to each.
    public func run(items: [ImageItem]) throws -> JobReport {
        let out = tree.root
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for path in AtomicFile.removeStaleTemporaries(under: out) { log("removed a partial file left by a killed run: \(path)") }
        try AtomicFile.write(Data(config.yaml.utf8), to: out.appendingPathComponent("stage1_config.yaml"))
        if let seed = model.randomInitSeed {
            try AtomicFile.write(Data((VisionTransformer.randomWeightsWarning(seed: seed) + "\n").utf8),
                                 to: out.appendingPathComponent("RANDOM_WEIGHTS_WARNING.txt"))
        }
        let manifest = out.appendingPathComponent("stage1_manifest.jsonl")
        var report = JobReport()
        // Done = the denoised file and an ok record both exist (a kill between the two redoes the image).
        var recorded = Stage1Manifest.completed(manifest)
        let todo = items.filter { !isDone($0.relativeStem, recorded) }
        report.skipped = items.count - todo.count
        if report.skipped > 0 { log("stage1: \(report.skipped) of \(items.count) images already done, skipping them") }
        let progress = Progress(total: todo.count, label: "stage1", every: 1, quiet: quiet)
        let visEvery = config.settings.stage1.visEvery
        for (n, item) in todo.enumerated() {
            // Another process (a concurrent task on the same shard) holds it: leave it to that one.
            guard let claim = try ImageClaim.tryAcquire(root: out, stem: item.relativeStem) else {
                log("stage1: \(item.relativeStem) is being fitted by another process, skipping it")
                report.skipped += 1
                progress.advance(note: "\(item.relativeStem) claimed elsewhere")
                continue
            }
            defer { withExtendedLifetime(claim) {} }
            // It may have been finished between the listing and the claim.
            if FileManager.default.fileExists(atPath: tree.denoised(item.relativeStem).path) {
                recorded = Stage1Manifest.completed(manifest)
                if isDone(item.relativeStem, recorded) {
                    report.skipped += 1
                    progress.advance(note: "\(item.relativeStem) done elsewhere")
                    continue
                }
            }
            let t0 = Date()
            var entry: [String: Any] = ["image": item.relativeStem, "time": ISO8601DateFormatter().string(from: t0)]
            do {
                let seed = Stage1Job.imageSeed(config.settings.run.seed, item.relativeStem)
                let (raw, coords) = try viewFeatures(item.url, seed: seed)
                let result = try Stage1.fit(views: raw, coords: coords, settings: settings, seed: seed, label: "stage1 \(item.relativeStem)",
                                            quiet: true, printFreq: config.settings.stage1.printFreq)
                try write(result.output, item: item, views: raw, visual: visEvery > 0 && n % visEvery == 0)
                report.written += 1
                entry["status"] = "ok"
                entry["final_loss"] = result.finalLoss
                entry["ms_per_step"] = result.msPerStep
                for (k, v) in result.lastMetrics { entry[k] = v }
            } catch {
                report.failures.append((item.url.path, "\(error)"))
                entry["status"] = "failed"
                entry["error"] = "\(error)"
                log("stage1: \(item.url.path) failed: \(error)")
            }
            entry["seconds"] = Date().timeIntervalSince(t0)
            try appendJSONLine(entry, to: manifest)
            progress.advance(note: "\(item.relativeStem) \(String(format: "%.1fs", Date().timeIntervalSince(t0)))")
        }
        return report
    }

    func isDone(_ stem: String, _ recorded: Set<String>) -> Bool {
        recorded.contains(stem) && FileManager.default.fileExists(atPath: tree.denoised(stem).path)
    }

    /// raw and denoised (always), G / h / views (with save_extras), the visual strip.
    func write(_ o: Stage1Output, item: ImageItem, views: Tensor, visual: Bool) throws {
        let stem = item.relativeStem
        func put(_ t: Tensor, _ url: URL) throws {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(t, to: url)
        }
        if config.settings.stage1.saveExtras {
            try put(o.sharedArtifacts, tree.extra("shared_artifacts", stem))
            if let r = o.residual { try put(r, tree.extra("residual", stem)) }
            try put(views, tree.extra("view_features", stem))
        }
        if visual {
            let url = tree.visual("stage1", stem)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let (h, w) = inputSize
            let image = try RGBImage(contentsOf: item.url)
            try Stage1Job.strip(input: image.resized(width: w, height: h), raw: o.raw, denoised: o.denoised,
                                artifacts: o.sharedArtifacts).write(to: url)
        }
        // raw first, denoised last: the denoised file's presence marks the image complete.
        try put(o.raw, tree.raw(stem))
        try put(o.denoised, tree.denoised(stem))
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
        let tiles = [input.resized(width: tw, height: th),
                     Visuals.upsampleNearest(pca.image(raw), width: tw, height: th),
                     Visuals.upsampleNearest(pca.image(denoised), width: tw, height: th),
                     Visuals.upsampleNearest(g.image(artifacts), width: tw, height: th),
                     Visuals.upsampleNearest(Visuals.heatmap(rawNorm, range: (lo, hi)), width: tw, height: th),
                     Visuals.upsampleNearest(Visuals.heatmap(denNorm, range: (lo, hi)), width: tw, height: th),
                     Visuals.upsampleNearest(Visuals.normHeatmap(artifacts), width: tw, height: th)]
        return Visuals.hstrip(tiles)
    }
}
