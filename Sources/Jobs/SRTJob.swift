import DVT
import Formats
import Foundation
import NN
import TensorCore
import Training
import Vision

/// The work of `dvt srt` over a list of images, as a library function (the CLI parses flags and
/// calls this; tests call it directly).
///
/// For every image: OUT/<relative stem>.npy with the (H', W', C) SRT features, and with
/// `visualize` OUT/<relative stem>.png, a strip raw PCA | SRT PCA (same basis) | norm of the
/// difference. OUT/srt_run.json records the settings, the model (and the random-weights
/// warning when the weights are random) and, at the end, which images failed.
public struct SRTJob {
    public var srt: SRT
    public var resolution: SRTResolution
    public var fast = false
    public var visualize = false
    /// Network input size (H, W).
    public var height: Int
    public var width: Int
    /// Where the weights came from, for the record (a path, or nil with random weights).
    public var weightsPath: String?

    public init(srt: SRT, resolution: SRTResolution, height: Int, width: Int) {
        self.srt = srt
        self.resolution = resolution
        self.height = height
        self.width = width
    }

    public typealias Failure = JobFailure
    public typealias Report = JobReport

    /// The run record written next to the outputs.
    struct Record: Codable {
        var tool = "dvt srt"
        var arch: String
        var weights: String?
        var randomInitSeed: UInt64?
        var warning: String?
        /// Operand precision of the ViT's products (`fp32` / `bf16`); nil in records older than the key.
        var precision: String?
        /// Where the weights came from and the position resampling in use (and why); nil in
        /// older records, and the resampling nil for RoPE-only models.
        var weightsOrigin: String?
        var posEmbedResample: String?
        var layer: Int
        var stride: Int
        var inputSize: [Int]
        var dx: Int
        var dy: Int
        var aggregate: String
        var weighting: String
        var resolution: String
        var fast: Bool
        var views: Int
        var forwards: Int
        var images: Int
        var completed: Bool
        var failed: [Failure]
    }

    public static let recordName = "srt_run.json"

    func record(images: Int, completed: Bool, failed: [Failure]) -> Record {
        let seed = srt.model.randomInitSeed
        let res: String
        switch resolution {
        case .token: res = "token"
        case .fine(let f): res = "fine (×\(f))"
        case .pixel: res = "pixel"
        }
        let o = srt.options
        return Record(
            arch: srt.model.config.name, weights: weightsPath, randomInitSeed: seed,
            warning: seed.map { VisionTransformer.randomWeightsWarning(seed: $0) },
            precision: srt.model.precision.rawValue,
            weightsOrigin: srt.model.weightsOrigin, posEmbedResample: srt.model.positionResamplingNote,
            layer: o.layer, stride: srt.stride, inputSize: [height, width], dx: o.dx, dy: o.dy,
            aggregate: o.aggregate.rawValue,
            weighting: o.uniform ? "uniform over the shift grid" : "unshifted view counted twice (official SRT)",
            resolution: res, fast: fast, views: srt.shifts.count,
            forwards: (2 * o.dx + 1) * (2 * o.dy + 1), images: images, completed: completed, failed: failed)
    }

    func writeRecord(_ r: Record, to out: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(r), to: out.appendingPathComponent(SRTJob.recordName))
    }

    /// Runs over `items`; an image that cannot be read or processed is reported, skipped and
    /// listed in the report (the caller decides the exit status).
    public func run(
        items: [ImageItem], outDir: URL, showProgress: Bool = true,
        log: @escaping (String) -> Void = ImageJobEngine.standardError
    ) throws -> Report {
        try srt.validate(resolution)
        if fast && srt.options.aggregate != .mean {
            throw SRTError("--fast computes the mean on the token grid directly; it has no median variant")
        }
        if fast && resolution == .pixel {
            throw SRTError("--fast skips the pixel map; use --resolution token or fine with it")
        }
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        try writeRecord(record(images: items.count, completed: false, failed: []), to: outDir)
        var engine = ImageJobEngine(output: outDir, log: log)
        engine.quiet = !showProgress
        let report = try engine.run(Client(job: self, outDir: outDir), items: items)
        try writeRecord(record(images: items.count, completed: true, failed: report.failures), to: outDir)
        return report
    }

    /// The engine's view of the job: one image at a time (its shifted views are the batch).
    struct Client: ImageJobClient {
        let job: SRTJob
        let outDir: URL
        var label: String { "srt" }
        var batchSize: Int { 1 }

        func isDone(_ item: ImageItem) -> Bool { false }

        func prepare(_ item: ImageItem) throws -> Tensor {
            try job.srt.model.preprocess(item.url, height: job.height, width: job.width)  // (3, H, W)
        }

        func forward(_ batch: [Tensor]) throws -> [SRT.Result] {
            try batch.map { try job.srt.run($0, resolution: job.resolution, fast: job.fast) }
        }

        func finish(_ item: ImageItem, _ image: Tensor, _ result: SRT.Result, position: Int) throws -> ImageJobOutput {
            let npy = outDir.appendingPathComponent(item.relativeStem + ".npy")
            try FileManager.default.createDirectory(at: npy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(result.output, to: npy)
            var files = [npy]
            if job.visualize {
                let png = outDir.appendingPathComponent(item.relativeStem + ".png")
                try Visuals.write(try Visuals.comparisonStrip(before: result.raw, after: result.output), to: png)
                files.append(png)
            }
            return ImageJobOutput(files: files)
        }
    }
}

