import DVT
import Formats
import Foundation
import NN
import Report
import Settings
import TensorCore
import Training
import Vision

/// What a batch job over images did: how many were written, skipped (already complete) or
/// failed, and why each failure happened.
public struct JobReport: Sendable {
    public var written = 0
    public var skipped = 0
    public var failures: [(path: String, error: String)] = []
    public init() {}

    /// The end-of-job summary; failures are listed one per line.
    public var summary: String {
        var s = "\(written) written, \(skipped) already present, \(failures.count) failed"
        for f in failures { s += "\n  FAILED \(f.path): \(f.error)" }
        return s
    }
}

/// `dvt extract`: ViT features of every image, one (Gh, Gw, C) float32 .npy per image,
/// mirroring the input tree under `output`.
public struct ExtractJob {
    public var model: VisionTransformer
    public var layer: Int
    public var inputSize: (Int, Int)
    public var stride: Int?
    public var norm = true
    public var batchSize = 4
    public var overwrite = false
    /// How the size and stride were given, for the geometry check's message.
    public var geometryNames = InputGeometry.Names.flags

    public init(model: VisionTransformer, layer: Int, inputSize: (Int, Int), stride: Int?) {
        self.model = model
        self.layer = layer
        self.inputSize = inputSize
        self.stride = stride
    }

    /// Runs over `items`, writing OUT/<relative stem>.npy atomically. A bad image is recorded and
    /// skipped; existing outputs are kept unless `overwrite`.
    public func run(items: [ImageItem], output: URL, quiet: Bool = false) throws -> JobReport {
        // Before anything is written: a size or stride the model cannot take used to trap, or abort
        // on a huge allocation, after extract_info.json was already in place.
        try InputGeometry.validate(height: inputSize.0, width: inputSize.1, stride: stride, model: model.config,
                                   batch: batchSize, names: geometryNames)
        try FileErrors.createDirectory(output)
        try writeInfo(output)
        var report = JobReport()
        let progress = Progress(total: items.count, label: "extract", quiet: quiet)
        var pending: [(ImageItem, Tensor)] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            let (h, w) = inputSize
            let batch = Tensor(zeros: [pending.count, 3, h, w])  // (B, 3, H, W)
            for (i, (_, x)) in pending.enumerated() { (batch.ptr + i * 3 * h * w).update(from: x.ptr, count: 3 * h * w) }
            let feats = model.features(batch, layers: [layer], norm: norm, stride: stride)[layer]!.patch  // (B, Gh, Gw, C)
            let per = feats.count / pending.count
            for (i, (item, _)) in pending.enumerated() {
                let one = Tensor(Array(feats.scalars[(i * per)..<((i + 1) * per)]), shape: Array(feats.shape.dropFirst()))
                let dst = output.appendingPathComponent(item.relativeStem + ".npy")
                do {
                    try FileManager.default.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Npy.write(one, to: dst)
                    report.written += 1
                } catch {
                    report.failures.append((item.url.path, "\(error)"))
                }
                progress.advance(note: item.relativeStem)
            }
            pending.removeAll()
        }
        for item in items {
            let dst = output.appendingPathComponent(item.relativeStem + ".npy")
            if !overwrite && FileManager.default.fileExists(atPath: dst.path) {
                report.skipped += 1
                progress.advance(note: "\(item.relativeStem) (exists)")
                continue
            }
            do {
                pending.append((item, try model.preprocess(item.url, height: inputSize.0, width: inputSize.1)))
            } catch {
                report.failures.append((item.url.path, "\(error)"))
                progress.advance(note: "\(item.relativeStem) FAILED")
                continue
            }
            if pending.count == batchSize { try flush() }
        }
        try flush()
        return report
    }

    /// extract_info.json: what produced these features (and a loud flag for random weights).
    func writeInfo(_ output: URL) throws {
        var info: [String: Any] = ["model": model.config.name, "layer": layer, "input_size": [inputSize.0, inputSize.1],
                                   "stride": stride ?? model.config.patchSize, "norm": norm, "layout": "(H, W, C) float32 per image"]
        if let seed = model.randomInitSeed {
            info["random_init"] = seed
            info["warning"] = VisionTransformer.randomWeightsWarning(seed: seed)
        }
        let data = try JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: output.appendingPathComponent("extract_info.json"))
    }
}
