import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import Training
import Vision

/// Options shared by the config-driven commands.
struct ConfigOptions: ParsableArguments {
    @Argument(help: "YAML config (see Configs/ and docs/config.md).") var config: String
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override config keys: --set stage1.num_iters=500 seed=3")
    var overrides: [String] = []
    @Option(help: "Override the run directory (config key output_dir).") var outputDir: String?
    @Option(help: "timm checkpoint, .safetensors or .pth (config key weights).") var weights: String?
    @Option(name: .customLong("random-init"), help: "Random-weights seed (config key random_init).") var randomInit: UInt64?
    @Option(help: "fp32 or bf16 (config key precision; docs/precision.md).") var precision: Precision?

    /// The config file with `--set` applied, then the typed flags set on the result (a folder
    /// named `1.0` or `null` stays a string).
    func resolve() throws -> ResolvedConfig {
        var c = try ConfigSchema.load(file: URL(fileURLWithPath: config), overrides: overrides)
        if let outputDir { try c.set("output_dir", value: .string(outputDir)) }
        if let weights {
            try c.set("weights", value: .string(weights))
            try c.set("random_init", value: .null)
        }
        if let randomInit {
            try c.set("random_init", value: randomInit <= UInt64(Int.max) ? .int(Int(randomInit)) : .string(String(randomInit)))
            try c.set("weights", value: .null)
        }
        if let precision { try c.set("precision", value: .string(precision.rawValue)) }
        return c
    }
}

/// Builds the ViT a config names, announcing random weights loudly.
func loadBackbone(_ c: ResolvedConfig) throws -> VisionTransformer {
    try loadViT(
        arch: c.settings.run.model, weights: c.settings.run.weights, randomInit: c.settings.run.randomInit.map { UInt64($0) },
        precision: c.settings.run.precision,
        resample: PositionResampling(setting: c.settings.run.posEmbedResample))
}

extension DVTCommand {
    struct Stage1Command: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage1",
            abstract: "DVT stage 1: per-image decomposition into clean features F, shared artifacts G and residual h.",
            discussion: """
                Writes OUT/raw_features/<model>/<rel>.npy and OUT/denoised_features/<model>/<rel>.npy, (H, W, C) float32, \
                one pair per image, plus stage1_manifest.jsonl. Images whose outputs exist are skipped, so a killed job \
                can simply be rerun. Shard with --shard K/N, or under Slurm arrays (SLURM_ARRAY_TASK_ID/COUNT) or \
                Kubernetes indexed jobs (JOB_COMPLETION_INDEX with DVT_NUM_SHARDS).
                """)

        @OptionGroup var compute: ComputeOptions
        @OptionGroup var options: ConfigOptions
        @Option(help: "Image list or directory (default: the config's data_list).") var images: String?
        @Option(help: "First image index of this run (after sharding).") var start = 0
        @Option(help: "Number of images of this run (default: all).") var count: Int?
        @Option(help: "This process's shard, K/N (0-based).") var shard: String?
        @Option(
            help: "Fit a precomputed feature file instead of images (safetensors with raw (V+1,H,W,C) and coords (V+1,H,W,2), the planted layout).")
        var features: String?

        func validate() throws {
            if start < 0 { throw ValidationError("--start must be >= 0") }
            if let count, count < 1 { throw ValidationError("--count must be >= 1") }
            if let shard { _ = try ShardSpec.parse(shard) }
        }

        func run() throws {
            let config = try options.resolve()
            if let features {
                try runOnFeatureFile(features, config: config)
                return
            }
            let model = try loadBackbone(config)
            let job = try Stage1Job(config: config, model: model)
            guard let source = images ?? config.settings.run.dataList else {
                throw ValidationError("no images: pass --images or set data_list in the config")
            }
            var items = try ImageSource.items(from: source, root: config.settings.run.dataRoot)
            if let spec = try shard.map(ShardSpec.parse) ?? ShardSpec.fromEnvironment() {
                items = ImageSource.shard(items, index: spec.index, count: spec.count)
            }
            items = Array(items.dropFirst(start).prefix(count ?? Int.max))
            let report = try job.run(items: items)
            print("stage1: " + report.summary)
            if let seed = model.randomInitSeed { print(VisionTransformer.randomWeightsWarning(seed: seed)) }
            try report.throwIfFailed()
        }

        func runOnFeatureFile(_ path: String, config: ResolvedConfig) throws {
            let r = try Stage1FeatureFile.run(URL(fileURLWithPath: path), config: config)
            print(String(format: "stage1 on %@: final loss %.5f, %.2f ms/step; outputs under %@", path, r.finalLoss, r.msPerStep, r.output.path))
            if let g = r.groundTruth {
                print(
                    String(
                        format: "ground truth: centred cosine raw %.4f, denoised %.4f; artifact cosine %.4f", g.rawVsClean, g.denoisedVsClean,
                        g.learntArtifactVsPlanted ?? .nan))
            }
        }
    }
}
