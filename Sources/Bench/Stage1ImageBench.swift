import DVT
import Formats
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
        /// The same peak when the forwards had finished, before the fit (which phase sets the peak).
        public var forwardPeakRSSBytes: Double = 0
        /// Bytes each extra view adds: its (Gh, Gw, C) features in `view_features_dtype` and its
        /// (Gh, Gw, 2) fp32 coordinates (held twice: the job's and the fit's copy). Pixels are
        /// rendered eight views at a time, so they do not grow with the views.
        public var bytesPerView: Double
        /// The PyTorch reference's ms/step on the same views, coordinates and settings (nil
        /// without a reference). Its table takes dense Adam (DVT's), ours `hash_table_adam`.
        public var torchMsPerStep: Double?

        public var msPerStep: Double { 1000 * fitSeconds / Double(stepsMeasured) }

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
    /// With `reference`, `dvt_torch.py stage1` then fits the same raw features and coordinates
    /// (written to a temporary safetensors file) with the same settings and seed, for the
    /// side-by-side ms/step.
    public static func stage1Image(
        config file: URL, image: URL, views: Int, steps: Int,
        precision: Precision, fitPrecision: Precision? = nil,
        reference: TorchReference? = nil
    ) throws -> Stage1ImageTiming {
        let full = try ConfigSchema.load(file: file)
        let viewsFull = full.settings.stage1.numViews, stepsFull = full.settings.stage1.numIters
        var slice = full
        try slice.set("stage1.num_views", value: .int(views))
        try slice.set("stage1.num_iters", value: .int(steps))
        try slice.set("stage1.warmup_iters", value: .int(steps / 10))
        try slice.set("random_init", value: .int(0))
        try slice.set("weights", value: .null)
        try slice.set("precision", value: precision.configValue)
        try slice.set("output_dir", value: .string(FileManager.default.temporaryDirectory.appendingPathComponent("dvt-bench-stage1").path))
        let model = try VisionTransformer.load(arch: slice.settings.run.model, weights: nil, randomInit: 0)
        model.precision = precision
        let job = try Stage1Job(config: slice, model: model)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let (rows, last, coords) = try job.viewFeatures(image, seed: 0)
        let t1 = DispatchTime.now().uptimeNanoseconds
        var forwardUsage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &forwardUsage)
        Tensor.releaseCachedMemory()  // as `dvt stage1` does before each fit
        let result = try Stage1.fit(
            rows: rows, lastView: last, coords: coords, settings: job.settings, seed: 0,
            precision: fitPrecision ?? precision)  // as the config key: both, unless told
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let tokensPerView = coords.count / coords.shape[0] / 2
        let perView = Double(rows.bytes / coords.shape[0] + 2 * tokensPerView * 2 * 4)
        var timing = Stage1ImageTiming(
            viewsMeasured: views, stepsMeasured: steps, viewsFull: viewsFull, stepsFull: stepsFull,
            viewSeconds: Double(t1 - t0) / 1e9, fitSeconds: result.seconds,
            peakRSSBytes: Double(usage.ru_maxrss) * 1024, bytesPerView: perView)
        timing.forwardPeakRSSBytes = Double(forwardUsage.ru_maxrss) * 1024
        if let reference {
            let raw = rows.copyRows(0..<rows.rows).reshape(Array(coords.shape.dropLast()) + [rows.cols])  // (V+1, Gh, Gw, C)
            timing.torchMsPerStep = try referenceFit(reference, raw: raw, coords: coords, settings: job.settings)
        }
        return timing
    }

    /// `dvt_torch.py stage1` on (V, h, w, C) `raw` and (V, h, w, 2) `coords`; returns its ms/step.
    /// Its recovery scores need a truth, which a photo has not: the last view and zeros stand in
    /// (they are printed after the timed loop and ignored here).
    static func referenceFit(_ reference: TorchReference, raw: Tensor, coords: Tensor, settings: Stage1Settings) throws -> Double {
        let (h, w, c) = (raw.shape[1], raw.shape[2], raw.shape[3])
        let last = Tensor(zeros: [h, w, c])  // (h, w, C)
        last.assign(withNoGrad { raw.slice(axis: 0, (raw.shape[0] - 1)..<raw.shape[0]) })
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dvt-bench-stage1-\(getpid()).safetensors")
        try SafeTensors.write(["raw": raw, "coords": coords, "clean_full": last, "artifact": Tensor(zeros: [h, w, c])], to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let v = try reference.values(
            PlantedBench.referenceArguments(file: file.path, settings: settings, seed: 0),
            required: ["ms_per_step"])
        return v["ms_per_step"]!
    }
}
