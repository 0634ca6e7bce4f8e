import DVT
import Formats
import Foundation
import Probe
import Settings
import TensorCore
import Vision

/// Frozen features of the probe's images, one (Gh, Gw, C) map per image and method, cached on
/// disk so a rerun trains heads without touching the ViT. Every feature source is here, in one
/// place, so it can move onto the per-image job engine unchanged:
/// - `raw`: the ViT's patch tokens at the config's layer and input size (and the class token,
///   for the depth head), batched like ExtractJob;
/// - `srt`: SRTJob's token-resolution ensemble (config's srt.*);
/// - `stage1`: Stage1Job on the probe images, written into the run tree under
///   `denoised_features/<model>/probe/<layout>/…` (skipped when already there);
/// - `stage2`: the run's denoiser (stage2/denoiser.safetensors) on the raw maps;
/// - any other method string: a denoiser file (.safetensors or official .pth) on the raw maps.
public struct ProbeFeatures {
    public let config: ResolvedConfig
    public let model: VisionTransformer
    public let layout: DatasetLayout
    public var log: (String) -> Void
    public var quiet = true
    let runRoot: URL
    let layer: Int
    let size: (Int, Int)
    let patchStride: Int

    public init(config: ResolvedConfig, model: VisionTransformer, layout: DatasetLayout, log: @escaping (String) -> Void) throws {
        self.config = config
        self.model = model
        self.layout = layout
        self.log = log
        runRoot = URL(fileURLWithPath: config.settings.run.outputDir)
        layer = try Stage1Job.layer(config: config, model: model)
        patchStride = InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize)
        size = InputGeometry.inputSize(config.settings.run.inputSize, stride: patchStride)
    }

    /// The network input size (H, W).
    public var inputSize: (Int, Int) { size }

    func cacheDir(_ method: String) -> URL {
        let tag =
            ["raw", "srt", "stage1", "stage2"].contains(method)
            ? method
            : "file-" + URL(fileURLWithPath: method).deletingPathExtension().lastPathComponent
        return runRoot.appendingPathComponent("probe/features/\(tag)/\(layout.rawValue)")
    }

    func items(_ samples: [ProbeSample]) -> [ImageItem] {
        samples.map { ImageItem(url: $0.image, relativeStem: "probe/\(layout.rawValue)/\($0.name)") }
    }

    /// Patch maps (and class tokens) of every sample for `method`, in sample order.
    public func maps(_ method: String, _ samples: [ProbeSample]) throws -> [(patch: Tensor, cls: Tensor?)] {
        switch method {
        case "raw": return try raw(samples)
        case "srt": return try srt(samples)
        case "stage1": return try stage1(samples)
        case "stage2":
            let file = Stage2Runner.runDirectory(config: config).appendingPathComponent("denoiser.safetensors")
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw ProbeDataError(
                    "method stage2 needs the run's denoiser \(file.path); train it with `dvt stage2 CONFIG` or `dvt run CONFIG`, or pass a denoiser file as a method"
                )
            }
            return try denoised(samples, file)
        default:
            let file = URL(fileURLWithPath: method)
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw ProbeDataError("unknown probe method '\(method)': use raw, srt, stage1, stage2 or the path of a denoiser file (no such file)")
            }
            return try denoised(samples, file)
        }
    }

    func raw(_ samples: [ProbeSample]) throws -> [(patch: Tensor, cls: Tensor?)] {
        let dir = cacheDir("raw")
        var out = [(patch: Tensor, cls: Tensor?)?](repeating: nil, count: samples.count)
        var todo: [Int] = []
        for (i, s) in samples.enumerated() {
            let p = dir.appendingPathComponent(s.name + ".npy"), c = dir.appendingPathComponent(s.name + ".cls.npy")
            if let patch = try? Npy.read(p) {
                out[i] = (patch, try? Npy.read(c))
            } else {
                todo.append(i)
            }
        }
        let (h, w) = size
        for chunk in stride(from: 0, to: todo.count, by: 4).map({ Array(todo[$0..<min($0 + 4, todo.count)]) }) {
            let batch = Tensor(zeros: [chunk.count, 3, h, w])  // (B, 3, H, W)
            for (k, i) in chunk.enumerated() {
                let x = try model.preprocess(samples[i].image, height: h, width: w)
                for j in 0..<(3 * h * w) { batch[flat: k * 3 * h * w + j] = x[flat: j] }
            }
            let f = withNoGrad { model.features(batch, layers: [layer], norm: true, stride: patchStride)[layer]! }
            let per = f.patch.count / chunk.count, c = f.patch.shape[3], rows = f.prefix.shape[1]
            let patches = f.patch.scalars, prefixes = f.prefix.scalars
            let mapShape = Array(f.patch.shape.dropFirst())
            for (k, i) in chunk.enumerated() {
                let patch = Tensor(Array(patches[(k * per)..<((k + 1) * per)]), shape: mapShape)
                let start = k * rows * c
                let cls: Tensor? = rows > 0 ? Tensor(Array(prefixes[start..<(start + c)]), shape: [c]) : nil
                let p = dir.appendingPathComponent(samples[i].name + ".npy")
                try FileManager.default.createDirectory(at: p.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Npy.write(patch, to: p)
                if let cls { try Npy.write(cls, to: dir.appendingPathComponent(samples[i].name + ".cls.npy")) }
                out[i] = (patch, cls)
            }
        }
        return out.map { $0! }
    }

    func srt(_ samples: [ProbeSample]) throws -> [(patch: Tensor, cls: Tensor?)] {
        let dir = cacheDir("srt")
        let todo = samples.filter { !FileManager.default.fileExists(atPath: dir.appendingPathComponent($0.name + ".npy").path) }
        if !todo.isEmpty {
            let options = SRT.Options(config.settings.srt, layer: layer, stride: config.settings.run.strideSize)
            var job = SRTJob(srt: try SRT(model: model, options: options), resolution: .token, height: size.0, width: size.1)
            job.fast = options.aggregate == .mean
            let r = try job.run(items: todo.map { ImageItem(url: $0.image, relativeStem: $0.name) }, outDir: dir, showProgress: !quiet, log: log)
            if let f = r.failures.first { throw ProbeDataError("SRT failed on \(f.image): \(f.error)") }
        }
        let cls = try raw(samples).map(\.cls)
        return try samples.enumerated().map { (try Npy.read(dir.appendingPathComponent($1.name + ".npy")), cls[$0]) }
    }

    func stage1(_ samples: [ProbeSample]) throws -> [(patch: Tensor, cls: Tensor?)] {
        let job = try Stage1Job(config: config, model: model)
        job.quiet = quiet
        job.log = log
        let its = items(samples)
        let report = try job.run(items: its)
        if let f = report.failures.first { throw ProbeDataError("stage 1 failed on \(f.image): \(f.error)") }
        let cls = try raw(samples).map(\.cls)
        return try its.enumerated().map { (try Npy.read(job.tree.denoised($1.relativeStem)), cls[$0]) }
    }

    func denoised(_ samples: [ProbeSample], _ file: URL) throws -> [(patch: Tensor, cls: Tensor?)] {
        let denoiser = try Denoiser.load(file)
        return try raw(samples).map { m in
            guard m.patch.shape.last == denoiser.config.dim else {
                throw ProbeDataError("denoiser \(file.path) takes \(denoiser.config.dim) channels but the features have shape \(m.patch.shape)")
            }
            return (denoiser.denoise(m.patch), m.cls)
        }
    }
}
