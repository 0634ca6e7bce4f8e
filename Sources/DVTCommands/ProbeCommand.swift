import ArgumentParser
import Foundation
import Jobs
import Probe
import Settings
import Vision

extension DVTCommand {
    struct ProbeCommand: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "probe",
            abstract: "Downstream evaluation: DVT's linear probes (segmentation mIoU, depth RMSE) on frozen features of each method.",
            discussion: """
                One head per method, trained on the train split's cached feature maps and evaluated on val: \
                raw (the ViT), srt (SRT ensembles), stage1 (DVT stage 1, written into the run tree), stage2 \
                (the run's denoiser) or the path of a denoiser file. Prints the method × metric table and \
                writes OUTPUT_DIR/probe/<task>.json and OUTPUT_DIR/probe/visuals/. The default is a CPU-sized \
                protocol (1000 steps of 8 maps); --official uses the official numbers (docs/probe.md). \
                Example: dvt probe Configs/demo.yaml --task segmentation --dataset voc Datasets/synthetic-voc --methods raw,stage2
                """)

        @OptionGroup var compute: ComputeOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Dataset root (default: probe.root).") var root: String?
        @Option(help: "segmentation or depth (default: probe.task).", transform: choiceFlag("probe task")) var task: ProbeTask?
        @Option(help: "Dataset layout: voc, ade20k, nyu or folder (default: probe.dataset).", transform: choiceFlag("dataset layout"))
        var dataset: DatasetLayout?
        @Option(help: "Comma-separated methods: raw, srt, stage1, stage2 or denoiser files (default: probe.methods).") var methods: String?
        @Flag(help: "The official protocol's iterations and batch (40000/38400 steps of 16 maps).") var official = false
        @Option(help: "Head training steps (config key probe.iterations).") var iterations: Int?

        func run() throws {
            var config = try options.resolve()
            if let iterations { try config.set("probe.iterations", value: .int(iterations)) }
            let model = try loadBackbone(config)
            let probe = try ProbeRun(
                config: config, model: model, task: task, dataset: dataset, root: root, methods: methods,
                official: official ? true : nil)
            let outcome = try probe.run()
            print(outcome.table, terminator: "")
            print("written: \(outcome.json.path)")
            if let seed = model.randomInitSeed { print(VisionTransformer.randomWeightsWarning(seed: seed)) }
        }
    }

    struct SynthVOC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "synth-voc",
            abstract: "Writes the seeded synthetic segmentation scenes in the VOC2012 layout (Datasets/synthetic-voc is seed 0).")

        @Option(help: "Output folder.") var out: String
        @Option(help: "Seed of every random draw.") var seed: UInt64 = 0
        @Option(help: "Training scenes.") var train = 48
        @Option(help: "Validation scenes.") var val = 16
        @Option(help: "Side of each square scene in pixels.") var size = 96

        func run() throws {
            try SyntheticScenes.write(to: URL(fileURLWithPath: out), seed: seed, train: train, val: val, size: size)
            print("wrote \(train) + \(val) scenes (\(size)×\(size), \(SyntheticScenes.classNames.count) classes) to \(out)")
        }
    }
}
