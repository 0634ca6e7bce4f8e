import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import Training
import Vision

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
    /// When set, each image's network input (the normalised (3, H, W) tensor the ViT sees) is
    /// written here too, as <relative stem>.npy: the exact input to feed another runtime when
    /// comparing features (scripts/make_onnx_golden.py).
    public var inputsDirectory: URL?
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
        // Before anything is written: a size or stride the model cannot take would trap, or abort
        // on a huge allocation, after extract_info.json was already in place.
        try InputGeometry.validate(
            height: inputSize.0, width: inputSize.1, stride: stride, model: model.config,
            batch: batchSize, names: geometryNames)
        try FileErrors.createDirectory(output)
        try writeInfo(output)
        var engine = ImageJobEngine(output: output)
        engine.quiet = quiet
        return try engine.run(Client(job: self, output: output), items: items)
    }

    /// The engine's view of the job: decode, one batched ViT forward, one .npy per image.
    struct Client: ImageJobClient {
        let job: ExtractJob
        let output: URL
        var label: String { "extract" }
        var batchSize: Int { job.batchSize }

        func destination(_ item: ImageItem) -> URL { output.appendingPathComponent(item.relativeStem + ".npy") }

        func isDone(_ item: ImageItem) -> Bool {
            !job.overwrite && FileManager.default.fileExists(atPath: destination(item).path)
        }

        func prepare(_ item: ImageItem) throws -> Tensor {
            try job.model.preprocess(item.url, height: job.inputSize.0, width: job.inputSize.1)  // (3, H, W)
        }

        func forward(_ batch: [Tensor]) throws -> [Tensor] {
            let x = Tensor.batched(batch)  // (B, 3, H, W)
            return job.model.features(x, layers: [job.layer], norm: job.norm, stride: job.stride)[job.layer]!.patch.unbatched()  // B × (Gh, Gw, C)
        }

        func finish(_ item: ImageItem, _ prepared: Tensor, _ features: Tensor, position: Int) throws -> ImageJobOutput {
            let dst = destination(item)
            try FileManager.default.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(features, to: dst)
            guard let inputs = job.inputsDirectory else { return ImageJobOutput(files: [dst]) }
            let input = inputs.appendingPathComponent(item.relativeStem + ".npy")
            try FileManager.default.createDirectory(at: input.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(prepared, to: input)
            return ImageJobOutput(files: [dst, input])
        }
    }

    /// extract_info.json: what produced these features (and a loud flag for random weights).
    func writeInfo(_ output: URL) throws {
        var info: [String: Any] = [
            "model": model.config.name, "layer": layer, "input_size": [inputSize.0, inputSize.1],
            "stride": stride ?? model.config.patchSize, "norm": norm, "layout": "(H, W, C) float32 per image",
            "precision": model.precision.rawValue,
        ]
        info.merge(model.recordProvenance) { $1 }
        try AtomicFile.writeJSON(info, to: output.appendingPathComponent("extract_info.json"))
    }
}

extension VisionTransformer {
    /// The backbone's part of a JSON record (extract_info.json, run.json): where the weights came
    /// from, the position resampling in use, and for random weights their seed and the warning.
    var recordProvenance: [String: Any] {
        var p: [String: Any] = ["weights_origin": weightsOrigin]
        if let note = positionResamplingNote { p["pos_embed_resample"] = note }
        if let seed = randomInitSeed {
            p["random_init"] = seed
            p["warning"] = VisionTransformer.randomWeightsWarning(seed: seed)
        }
        return p
    }
}
