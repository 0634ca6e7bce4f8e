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

/// Where the PyTorch reference lives, for side-by-side ratios.
struct ReferenceOptions: ParsableArguments {
    @Option(help: "Python with torch and timm, to run the PyTorch reference side by side (env DVT_TORCH_PYTHON).")
    var torchPython: String? = ProcessInfo.processInfo.environment["DVT_TORCH_PYTHON"]
    @Option(help: "Path of dvt_torch.py, the PyTorch reference (env DVT_TORCH_REFERENCE).")
    var reference: String? = ProcessInfo.processInfo.environment["DVT_TORCH_REFERENCE"]

    @Option(
        help:
            "Path of scripts/torch_bench.py (the vit and denoiser cases with --precision; env DVT_TORCH_BENCH; default scripts/torch_bench.py when it exists)."
    )
    var torchBench: String? = ProcessInfo.processInfo.environment["DVT_TORCH_BENCH"]

    var runner: TorchReference? {
        guard let torchPython, let reference else { return nil }
        return TorchReference(python: torchPython, script: reference)
    }

    /// The reference for `dvt bench vit` / `denoiser`: scripts/torch_bench.py, which takes
    /// --precision (bf16 = torch.autocast), or dvt_torch.py for fp32 when that script is absent.
    func benchRunner(precision: Precision) throws -> TorchReference? {
        guard let torchPython else { return nil }
        let script = torchBench ?? (FileManager.default.fileExists(atPath: "scripts/torch_bench.py") ? "scripts/torch_bench.py" : nil)
        if let script { return TorchReference(python: torchPython, script: script) }
        if precision != .fp32 {
            throw ValidationError(
                "--precision \(precision.rawValue) with a PyTorch reference needs scripts/torch_bench.py (--torch-bench PATH): dvt_torch.py has no precision option"
            )
        }
        return runner
    }
}

extension DVTCommand {
    struct BenchCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Benchmarks, optionally side by side with the PyTorch reference (release builds only).",
            subcommands: [
                Engine.self, ViT.self, SRT.self, Planted.self, PlantedStage2Bench.self, ProbeBench.self, DenoiserBench.self, DenoiserRanksBench.self,
                FinetuneBench.self, Stage1Image.self, Stage1Quality.self,
            ])
    }
}

extension DVTCommand.BenchCommand {
    struct Engine: ComputeCommand {
        static let configuration = CommandConfiguration(
            abstract: "Engine kernels: matmul vs raw OpenBLAS, layernorm, attention, Adam, and a stage-2 block step vs PyTorch.")
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var ref: ReferenceOptions

        func run() throws {
            try Bench.engineReport(reference: ref.runner, log: { print($0) })
        }
    }

    struct ViT: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "vit", abstract: "ViT feature extraction throughput (random weights), vs timm when a reference is given.")
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var ref: ReferenceOptions
        @OptionGroup var model: BenchModelOptions
        @Option var steps = 5
        @OptionGroup var precisionOption: BenchPrecisionOption

        func run() throws {
            let precision = precisionOption.precision
            try Bench.vitReport(
                arch: model.arch, size: model.size, batch: model.batch, steps: steps, precision: precision,
                reference: try ref.benchRunner(precision: precision), log: { print($0) })
        }
    }

    struct SRT: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "srt",
            abstract: "Seconds per image of one SRT ensemble (token resolution; pixel path and --fast), vs the PyTorch reference.")
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var ref: ReferenceOptions
        @OptionGroup var model: BenchModelOptions
        @Option var dx = 3
        @Option var dy = 3
        @Option(help: "Timed runs of each path (medians).") var rounds = 1
        @Flag(help: "One multi-threaded forward at a time instead of concurrent single-threaded forwards.")
        var serialViews = false

        func run() throws {
            try Bench.srtReport(
                arch: model.arch, size: model.size, dx: dx, dy: dy, batch: model.batch, rounds: rounds, parallelViews: !serialViews,
                reference: ref.runner, log: { print($0) })
        }
    }
}

extension DVTCommand.BenchCommand {
    struct Planted: ComputeCommand {
        static let configuration = CommandConfiguration(
            abstract: "DVT stage 1 on a planted-artifact case: recovery of the clean field and the artifact, and ms/step.",
            discussion: """
                Reads FILE (safetensors in the planted layout: raw, coords, clean_full, artifact) or, with \
                --generate-seed, generates a case. Prints centred cosines raw-vs-clean, denoised-vs-clean and \
                artifact-vs-truth. With --torch-python and --reference, runs dvt_torch.py stage1 on the same \
                data in the same command and prints its row and the speed ratio.
                """)
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var ref: ReferenceOptions
        @Argument(help: "Planted case (.safetensors).") var file: String?
        @Option(help: "Generate the case with this seed instead of reading FILE.") var generateSeed: UInt64?
        @Option(help: "Generated case: token grid side.") var grid = 16
        @Option(help: "Generated case: feature channels.") var dim = 64
        @Option(help: "Generated case: views besides the whole image.") var views = 96
        @Option(help: "Write the generated case to this file.") var saveGenerated: String?
        @Option(
            help: "Generated case: take G (and the residual direction) from this seed's case, so cases share one artifact, as one ViT's images do.")
        var artifactSeed: UInt64?
        @Option(
            help:
                "Stage-1 setting of the bench (any stage1.* key, docs/config.md), applied over the bench's preset (PlantedBench.stage1Preset: the planted budget over DVT's defaults): --set stage1.num_iters=500"
        )
        var set: [String] = []
        @Option(help: "Model seed.") var seed: UInt64 = 0
        // Deprecated aliases of `--set stage1.KEY=VALUE`, kept so existing scripts keep working.
        @Option(help: "Deprecated: --set stage1.n_levels=N.") var nLevels: Int?
        @Option(help: "Deprecated: --set stage1.n_features_per_level=N.") var nFeaturesPerLevel: Int?
        @Option(help: "Deprecated: --set stage1.log2_hashmap_size=N.") var log2HashmapSize: Int?
        @Option(help: "Deprecated: --set stage1.base_resolution=N.") var baseResolution: Int?
        @Option(help: "Deprecated: --set stage1.max_resolution=N.") var finestResolution: Int?
        @Option(help: "Deprecated: --set stage1.num_iters=N.") var numIters: Int?
        @Option(help: "Deprecated: --set stage1.warmup_iters=N.") var warmupIters: Int?
        @Option(help: "Deprecated: --set stage1.pixel_bsz=N.") var pixelBsz: Int?
        @Option(help: "Deprecated: --set stage1.lr=X.") var lr: Double?
        @Option(help: "Deprecated: --set stage1.min_lr=X.") var minLR: Double?
        @Option(help: "Deprecated: --set stage1.hash_table_adam=MODE.") var hashTableAdam: Stage1Settings.HashTableAdam?
        @Option(help: "Deprecated: --set stage1.shared_artifacts_weight_decay=X.") var sharedArtifactsWeightDecay: Double?
        @Option(help: "Deprecated: --set stage1.coord_jitter=X.") var coordJitter: Double?
        @Flag(help: "Print the trainer's progress lines.") var verbose = false
        @Option(help: "Also score the outputs every N steps (printed with --verbose as val_*).") var valEvery = 0

        /// The deprecated flags given: the flag, the `--set` spelling its warning suggests, and
        /// the typed assignment it stands for.
        var aliases: [(flag: String, set: String, apply: (inout Stage1Settings) -> Void)] {
            var a: [(flag: String, set: String, apply: (inout Stage1Settings) -> Void)] = []
            func alias<V>(_ flag: String, _ key: String, _ value: V?, _ apply: @escaping (inout Stage1Settings, V) -> Void) {
                if let value { a.append((flag, "stage1.\(key)=\(value)", { apply(&$0, value) })) }
            }
            alias("n-levels", "n_levels", nLevels) { $0.nLevels = $1 }
            alias("n-features-per-level", "n_features_per_level", nFeaturesPerLevel) { $0.nFeaturesPerLevel = $1 }
            alias("log2-hashmap-size", "log2_hashmap_size", log2HashmapSize) { $0.log2HashmapSize = $1 }
            alias("base-resolution", "base_resolution", baseResolution) { $0.baseResolution = $1 }
            alias("finest-resolution", "max_resolution", finestResolution) { $0.maxResolution = $1 }
            alias("num-iters", "num_iters", numIters) { $0.numIters = $1 }
            alias("warmup-iters", "warmup_iters", warmupIters) { $0.warmupIters = $1 }
            alias("pixel-bsz", "pixel_bsz", pixelBsz) { $0.pixelBsz = $1 }
            alias("lr", "lr", lr) { $0.lr = $1 }
            alias("min-lr", "min_lr", minLR) { $0.minLR = $1 }
            alias("hash-table-adam", "hash_table_adam", hashTableAdam) { $0.hashTableAdam = $1 }
            alias("shared-artifacts-weight-decay", "shared_artifacts_weight_decay", sharedArtifactsWeightDecay) {
                $0.sharedArtifactsWeightDecay = $1
            }
            alias("coord-jitter", "coord_jitter", coordJitter) { $0.coordJitter = $1 }
            return a
        }

        /// Stage-1 settings from the one schema: the bench preset, then --set, then the deprecated
        /// flags set on the typed section, all range-checked by the schema.
        func stage1Settings() throws -> Stage1Settings {
            let aliases = aliases
            for a in aliases {
                FileHandle.standardError.write(Data("warning: --\(a.flag) is deprecated; use --set \(a.set)\n".utf8))
            }
            if let bad = set.first(where: { !$0.hasPrefix("stage1.") }) {
                throw ValidationError("bench planted takes stage1.* settings only, got '\(bad)'")
            }
            var s = try ConfigSchema.load(file: nil, overrides: PlantedBench.stage1Preset + set).settings.stage1
            for a in aliases { a.apply(&s) }
            try s.validate()
            return s
        }

        func validate() throws {
            if (file == nil) == (generateSeed == nil) { throw ValidationError("give either FILE or --generate-seed") }
            if grid < 2 || dim < 4 || views < 0 { throw ValidationError("generated case needs --grid >= 2, --dim >= 4, --views >= 0") }
        }

        func run() throws {
            var o = PlantedBench.Options(settings: try stage1Settings())
            o.file = file
            o.generateSeed = generateSeed
            o.generate.grid = grid; o.generate.dim = dim; o.generate.views = views
            o.generate.artifactSeed = artifactSeed
            o.saveGenerated = saveGenerated
            o.seed = seed
            o.verbose = verbose
            o.valEvery = valEvery
            o.reference = ref.runner
            try PlantedBench.bench(o, log: { print($0) })
        }
    }
}

extension DVTCommand.BenchCommand {
    /// `dvt bench planted-stage2`: both DVT stages on planted cases with known truth.
    struct PlantedStage2Bench: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "planted-stage2",
            abstract: "Stage 1 on planted cases that share one artifact, then stage 2 on their pairs, scored against the truth.",
            discussion: """
                Generates TRAIN_CASES + VAL_CASES planted cases (each its own clean field, all with the artifact of \
                --artifact-seed), runs stage 1 on each with the config's stage1.* settings and writes the usual feature \
                trees under output_dir (model name 'planted'), then trains stage 2 with the config's stage2.* settings on \
                the first TRAIN_CASES and validates on the rest. Prints the validation loss against the identity baseline \
                and the centred cosine to the planted truth of raw, stage-1 and stage-2 features; writes \
                output_dir/planted_stage2.json. Finished stage-1 cases are reused, so a killed run continues.
                """)

        @Argument(help: "YAML configuration (stage1.*, stage2.*, seed, output_dir).")
        var config = "Configs/planted.yaml"
        @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override config keys: --set stage2.num_iters=500")
        var overrides: [String] = []
        @Option(help: "Cases stage 2 trains on.") var trainCases = 10
        @Option(help: "Held-out cases stage 2 is validated and scored on.") var valCases = 3
        @Option(help: "Seed of the first case (case i uses FIRST_SEED + i).") var firstSeed: UInt64 = 1000
        @Option(help: "Seed of the shared artifact (the 'ViT').") var artifactSeed: UInt64 = 0
        @Option(help: "Token grid side.") var grid = 16
        @Option(help: "Feature channels (multiple of 64: stage 2 uses C/64 heads).") var dim = 64
        @Option(help: "Views per case besides the whole image.") var views = 96
        @Flag(help: "Continue stage 2 from its latest checkpoint (stage-1 cases are always reused).") var resume = false
        @Flag(help: "No progress lines.") var quiet = false
        @OptionGroup var compute: ComputeOptions

        func validate() throws {
            if trainCases < 1 || valCases < 1 { throw ValidationError("--train-cases and --val-cases must be at least 1") }
            if grid < 2 || views < 0 { throw ValidationError("--grid must be at least 2 and --views at least 0") }
            if dim < 64 || dim % 64 != 0 { throw ValidationError("--dim must be a positive multiple of 64 (stage 2 uses C/64 heads), got \(dim)") }
        }

        func run() throws {
            let cfg = try ConfigSchema.load(file: URL(fileURLWithPath: config), overrides: overrides)
            var o = PlantedStage2.Options()
            o.trainCases = trainCases; o.valCases = valCases; o.firstSeed = firstSeed; o.artifactSeed = artifactSeed
            o.planted.grid = grid; o.planted.dim = dim; o.planted.views = views
            o.resume = resume; o.quiet = quiet
            print(
                "planted stage 2: \(trainCases) training + \(valCases) validation cases (seeds \(firstSeed)..., artifact seed \(artifactSeed)), "
                    + "\(grid)x\(grid) tokens, C \(dim), \(views) views; stage 1 \(cfg.settings.stage1.numIters) iters per case, "
                    + "stage 2 \(cfg.settings.stage2.numIters) iters; output \(cfg.settings.run.outputDir)")
            let report = try PlantedStage2.run(
                config: cfg, options: o, log: { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } })
            print(PlantedStage2.format(report))
        }
    }
}

extension Stage1Settings.HashTableAdam: ExpressibleByArgument {}

/// The random-weights model a throughput bench runs: `--arch`, `--size`, `--batch`.
struct BenchModelOptions: ParsableArguments {
    @Option(help: "timm architecture, run with random weights.") var arch = "vit_small_patch14_dinov2"
    @Option(help: "Input side in pixels.") var size = 224
    @Option(help: "Images per forward.") var batch = 8
}

/// `--precision` of a bench that runs the same products on both sides.
struct BenchPrecisionOption: ParsableArguments {
    @Option(help: "fp32, or bf16 (ours: bf16 operands in the products; PyTorch: torch.autocast bf16).")
    var precision: Precision = .fp32
}
