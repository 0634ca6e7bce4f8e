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
    struct Run: ComputeCommand {
        static let configuration = CommandConfiguration(
            abstract: "The whole pipeline from one config: stage 1, SRT, stage 2, export, denoising, metrics and an HTML report.",
            discussion: """
                Every step skips work whose outputs are complete, so rerunning the same command after a crash \
                or a kill resumes. The run directory (output_dir) gets run.json (command, config, versions, seed, \
                timings), config.yaml, the feature trees, stage2/ (checkpoints, denoiser.safetensors) and \
                report/index.html.
                """)

        @OptionGroup var compute: ComputeOptions
        @OptionGroup var options: ConfigOptions
        @Flag(help: "No progress lines.") var quiet = false

        func run() throws {
            let config = try options.resolve()
            let model = try loadBackbone(config)
            let pipeline = Pipeline(config: config, model: model)
            pipeline.quiet = quiet
            pipeline.configFile = options.config
            let report = try pipeline.run()
            print(try String(contentsOf: URL(fileURLWithPath: config.settings.run.outputDir).appendingPathComponent("metrics.md"), encoding: .utf8))
            print("report: \(report.path)")
            if let seed = model.randomInitSeed {
                print(VisionTransformer.randomWeightsWarning(seed: seed))
                print(
                    "To use real features: dvt run \(options.config) --weights vit_small_patch14_dinov2.safetensors (a timm checkpoint you download on your own machine)."
                )
            }
            if let incomplete = pipeline.incomplete { throw incomplete }
        }
    }
}
