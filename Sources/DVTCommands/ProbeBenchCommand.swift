import ArgumentParser
import Bench
import Foundation
import Settings

extension DVTCommand.BenchCommand {
    /// `dvt bench probe`: planted segmentation, artifact strength × method → mIoU.
    struct ProbeBench: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "probe",
            abstract:
                "Planted segmentation: linear probes on raw, stage-1 and stage-2 features of planted cases as the artifact grows, against exact labels.",
            discussion: """
                For each --strengths value: TRAIN_CASES + VAL_CASES planted cases whose regions carry one of --classes \
                classes, stage 1 and stage 2 as `dvt bench planted-stage2` runs them (the config's stage1.* and stage2.*), \
                then one linear segmentation head per method trained on the training cases and scored on the rest. \
                Prints artifact strength × method → mIoU (and the centred cosine to the truth, and the probe's training \
                speed in maps/s); writes --json (default OUTPUT_DIR/probe/planted.json) with figures beside it.
                """)

        @OptionGroup var compute: ComputeOptions
        @Argument(help: "YAML configuration (stage1.*, stage2.*, seed, output_dir).") var config = "Configs/planted.yaml"
        @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override config keys: --set stage1.num_iters=500")
        var overrides: [String] = []
        @Option(help: "Comma-separated artifact strengths (the planted artifact's mean token norm relative to the clean field's).")
        var strengths = "0.5,1,2,4"
        @Option(help: "Cases the heads (and stage 2) train on.") var trainCases = 10
        @Option(help: "Held-out cases the heads are scored on.") var valCases = 4
        @Option(help: "Classes shared by the cases' regions.") var classes = 5
        @Option(help: "Head training steps.") var probeIterations = 300
        @Option(help: "Stage-1 views per case besides the whole image.") var views = 96
        @Option(
            help:
                "Feature channels of the planted cases. A linear head can project out a low-rank artifact when channels are many, so the effect shows at a few channels per artifact pattern."
        )
        var dim = 16
        @Option(help: "Where to write the table as JSON (default OUTPUT_DIR/probe/planted.json).") var json: String?
        @Flag(help: "Per-case progress lines.") var verbose = false

        func run() throws {
            var o = PlantedProbeBench.Options()
            o.strengths = try strengths.split(separator: ",").map {
                guard let v = Float($0.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                    throw ValidationError("--strengths: '\($0)' is not a non-negative number")
                }
                return v
            }
            let c = try ConfigSchema.load(file: URL(fileURLWithPath: config), overrides: overrides)
            o.trainCases = trainCases
            o.valCases = valCases
            o.classes = classes
            o.probeIterations = probeIterations
            o.views = views
            o.dim = dim
            o.quiet = !verbose
            let out =
                json.map { URL(fileURLWithPath: $0) }
                ?? URL(fileURLWithPath: c.settings.run.outputDir).appendingPathComponent("probe/planted.json")
            let rows = try PlantedProbeBench.run(config: c, options: o, json: out)
            print(PlantedProbeBench.table(rows), terminator: "")
            print("written: \(out.path)")
        }
    }
}
