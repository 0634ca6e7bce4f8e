import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import Training
import Vision

extension DVTCommand {
    struct Extract: ComputeCommand {
        static let configuration = CommandConfiguration(
            abstract: "Extract ViT features: one (H, W, C) float32 .npy per image, mirroring the input tree.")

        @OptionGroup var compute: ComputeOptions
        @OptionGroup var backbone: BackboneOptions
        @Option(help: "Image list (VOC-style, first field per line) or a directory.") var images: String
        @Option(help: "Folder list entries are relative to (default: the list's folder).") var root: String?
        @Option(help: "Output directory.") var out: String
        @Option(help: "Images per forward pass.") var batchSize = 4
        @Flag(help: "Skip the final norm (DVT uses it).") var noNorm = false
        @Flag(help: "Rewrite outputs that already exist.") var overwrite = false
        @Option(help: "Also write each image's normalised network input, (3, H, W) float32 .npy, under this folder.")
        var saveInputs: String?

        func validate() throws {
            if batchSize < 1 { throw ValidationError("--batch-size must be >= 1, got \(batchSize)") }
        }

        func run() throws {
            let model = try backbone.load()
            let items = try ImageSource.items(from: images, root: root)
            var job = ExtractJob(
                model: model, layer: try model.resolveLayer(backbone.layer),
                inputSize: backbone.inputSize(for: model), stride: backbone.stride)
            job.batchSize = batchSize
            job.norm = !noNorm
            job.overwrite = overwrite
            job.inputsDirectory = saveInputs.map { URL(fileURLWithPath: $0) }
            let report = try job.run(items: items, output: URL(fileURLWithPath: out))
            print(report.summary)
            if let seed = model.randomInitSeed { print(VisionTransformer.randomWeightsWarning(seed: seed)) }
            try report.throwIfFailed()
        }
    }
}
