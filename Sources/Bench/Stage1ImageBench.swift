import DVT
import Foundation
import Jobs
import Settings
import TensorCore
import Vision

extension Bench {
    /// A measured slice of DVT's per-image stage 1 and its extrapolation to the full recipe.
    public struct Stage1ImageTiming: Sendable {
        public var viewsMeasured: Int, stepsMeasured: Int
        public var viewsFull: Int, stepsFull: Int
        /// ViT features of the measured views plus the whole image.
        public var viewSeconds: Double
        /// The measured fit steps (hash grid + MLPs + Adam; the ViT is not involved).
        public var fitSeconds: Double
        /// Peak resident set of the process after the slice (getrusage ru_maxrss).
        public var peakRSSBytes: Double
        /// Bytes each extra view adds: its (3, H, W) input, its (Gh, Gw, C) features and
        /// (Gh, Gw, 2) coordinates, all float32 and all held until the fit starts.
        public var bytesPerView: Double

        /// Forwards scale with views + 1 (the whole image), steps with steps.
        public var fullViewSeconds: Double { viewSeconds * Double(viewsFull + 1) / Double(viewsMeasured + 1) }
        public var fullFitSeconds: Double { fitSeconds * Double(stepsFull) / Double(stepsMeasured) }
        public var perImageSeconds: Double { fullViewSeconds + fullFitSeconds }
        public var fullPeakRSSBytes: Double { peakRSSBytes + Double(viewsFull - viewsMeasured) * bytesPerView }
    }

    /// Runs `views` views and `steps` stage-1 steps of `config` (e.g. Configs/dvt-default.yaml)
    /// on one image with a random-weights ViT of the config's architecture, and extrapolates to
    /// the config's own num_views and num_iters. The warmup is scaled with the steps (it must
    /// fit in them), which does not change the cost of a step.
    public static func stage1Image(config file: URL, image: URL, views: Int, steps: Int,
                                   precision: Precision) throws -> Stage1ImageTiming {
        let full = try ConfigSchema.load(file: file)
        let viewsFull = full.settings.stage1.numViews, stepsFull = full.settings.stage1.numIters
        let slice = try ConfigSchema.load(file: file, overrides: [
            "stage1.num_views=\(views)", "stage1.num_iters=\(steps)", "stage1.warmup_iters=\(steps / 10)",
            "random_init=0", "weights=null", "precision=\(precision.rawValue)",
            "output_dir=\(FileManager.default.temporaryDirectory.appendingPathComponent("dvt-bench-stage1").path)"])
        let model = try VisionTransformer.load(arch: slice.settings.run.model!, weights: nil, randomInit: 0)
        model.precision = precision
        let job = try Stage1Job(config: slice, model: model)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let (raw, coords) = try job.viewFeatures(image, seed: 0)
        let t1 = DispatchTime.now().uptimeNanoseconds
        let result = try Stage1.fit(views: raw, coords: coords, settings: job.settings, seed: 0)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let (h, w) = (slice.settings.run.inputSize[0], slice.settings.run.inputSize[1])
        let perView = Double(3 * h * w + raw.count / raw.shape[0] + coords.count / coords.shape[0]) * 4
        return Stage1ImageTiming(viewsMeasured: views, stepsMeasured: steps, viewsFull: viewsFull, stepsFull: stepsFull,
                                 viewSeconds: Double(t1 - t0) / 1e9, fitSeconds: result.seconds,
                                 peakRSSBytes: Double(usage.ru_maxrss) * 1024, bytesPerView: perView)
    }
}
