import DVT
import Formats
import Foundation
import Jobs
import NN
import Settings
import TensorCore
import Training
import Vision

/// `dvt bench planted`: stage 1 on a planted-artifact case with known truth, scored the way
/// `dvt_torch.py stage1` scores it, optionally side by side with that reference.
public enum PlantedBench {
    /// The bench's stage-1 settings over the schema defaults (which are DVT's: loss scale 1024, no
    /// coordinate jitter): the small table and grid and 3000 steps of the planted budget.
    public static let stage1Preset = [
        "stage1.num_iters=3000", "stage1.n_levels=8", "stage1.log2_hashmap_size=16",
        "stage1.max_resolution=256", "stage1.coord_jitter=0",
    ]

    /// One scored run: ours (`PlantedScore`) or the PyTorch reference's, under the same names.
    public struct Row: Sendable {
        public var label: String
        /// `PlantedScore.rawVsClean`.
        public var rawVsClean: Double
        /// `PlantedScore.denoisedVsClean`.
        public var denoisedVsClean: Double
        /// `PlantedScore.learntArtifactVsPlanted`.
        public var learntArtifactVsPlanted: Double
        public var msPerStep: Double

        public init(label: String, rawVsClean: Double, denoisedVsClean: Double, learntArtifactVsPlanted: Double, msPerStep: Double) {
            self.label = label
            self.rawVsClean = rawVsClean
            self.denoisedVsClean = denoisedVsClean
            self.learntArtifactVsPlanted = learntArtifactVsPlanted
            self.msPerStep = msPerStep
        }
    }

    /// Scores a stage-1 output against the planted truth.
    public static func score(_ output: Stage1Output, truth: PlantedData, label: String, msPerStep: Double) -> Row {
        let s = PlantedScore(stage1: output, truth: truth)
        return Row(
            label: label, rawVsClean: Double(s.rawVsClean), denoisedVsClean: Double(s.denoisedVsClean),
            learntArtifactVsPlanted: Double(s.learntArtifactVsPlanted!), msPerStep: msPerStep)
    }

    /// Runs our stage 1 on `data` and scores it.
    /// With `valFreq > 0` the recovery metrics are also logged during training (`val_denoised_cos`,
    /// `val_artifact_cos`), which shows how each phase contributes.
    public static func run(
        _ data: PlantedData, settings: Stage1Settings, seed: UInt64, quiet: Bool = true,
        valFreq: Int = 0
    ) throws -> (Row, Stage1Result) {
        let validation: (Stage1Output) -> [String: Double] = { out in
            [
                "denoised_cos": Double(Metrics.centeredCosine(out.denoised, data.cleanFull)),
                "artifact_cos": Double(Metrics.flatCenteredCosine(out.sharedArtifacts, data.artifact)),
                // How much of the whole image's own raw tokens (artifact included) F reproduces.
                "denoised_raw_cos": Double(Metrics.centeredCosine(out.denoised, out.raw)),
            ]
        }
        let result = try Stage1.fit(
            views: data.raw, coords: data.coords, settings: settings, seed: seed, quiet: quiet,
            valFreq: valFreq, validation: valFreq > 0 ? validation : nil)
        return (score(result.output, truth: data, label: "ours", msPerStep: result.msPerStep), result)
    }

    /// The `dvt_torch.py stage1` arguments equivalent to `settings` (the reference has no
    /// switch for the residual predictor or the freeze fraction: it always uses DVT's 0.5).
    public static func referenceArguments(file: String, settings s: Stage1Settings, seed: UInt64) -> [String] {
        [
            "stage1", file, "--iters", "\(s.numIters)", "--warmup", "\(s.effectiveWarmupIters)", "--batch", "\(s.pixelBsz)",
            "--lr", "\(s.lr)", "--min-lr", "\(s.minLR)", "--weight-decay", "\(s.weightDecay)", "--loss-scale", "\(s.lossScale)",
            "--levels", "\(s.nLevels)", "--feats", "\(s.nFeaturesPerLevel)", "--log2-table", "\(s.log2HashmapSize)",
            "--base-res", "\(s.baseResolution)", "--finest-res", "\(s.maxResolution)", "--seed", "\(seed)",
        ]
    }

    /// Runs the PyTorch reference on `file` and reads its row.
    public static func runReference(_ runner: TorchReference, file: String, settings: Stage1Settings, seed: UInt64) throws -> Row {
        let keys = ["ms_per_step", "raw_vs_clean_centered_cos", "denoised_vs_clean_centered_cos", "artifact_vs_truth_cos"]
        let v = try runner.values(referenceArguments(file: file, settings: settings, seed: seed), required: keys)
        return Row(
            label: "torch", rawVsClean: v[keys[1]]!, denoisedVsClean: v[keys[2]]!, learntArtifactVsPlanted: v[keys[3]]!,
            msPerStep: v[keys[0]]!)
    }

    public static let header = "            raw_cos  denoised_cos  artifact_cos   ms/step"

    public static func format(_ r: Row) -> String {
        String(
            format: "%@  %7.4f  %12.4f  %12.4f  %8.2f", r.label.padding(toLength: 10, withPad: " ", startingAt: 0) as NSString, r.rawVsClean,
            r.denoisedVsClean,
            r.learntArtifactVsPlanted, r.msPerStep)
    }
}

extension PlantedBench {
    /// What `dvt bench planted` runs (its flags, the settings already resolved).
    public struct Options {
        /// The case: a planted file, or (with `generateSeed`) one generated with `generate`'s
        /// sizes and optionally written to `saveGenerated`.
        public var file: String?
        public var generateSeed: UInt64?
        public var generate = PlantedData.Options()
        public var saveGenerated: String?
        public var settings: Stage1Settings
        /// Model seed.
        public var seed: UInt64 = 0
        /// Print the trainer's progress lines; score the outputs every `valEvery` steps (0 = never).
        public var verbose = false
        public var valEvery = 0
        /// Also runs `dvt_torch.py stage1` on the same file (a generated case goes through a
        /// temporary file unless it is saved).
        public var reference: TorchReference?

        public init(settings: Stage1Settings) { self.settings = settings }
    }

    /// Runs ours (and the reference, when given) on the case, printing through `log`: the case
    /// and settings line, our final loss, the score table and the speed-up.
    public static func bench(_ o: Options, log: (String) -> Void) throws {
        let s = o.settings
        let data: PlantedData
        var path = o.file
        var tempDir: URL?
        if let g = o.generateSeed {
            data = PlantedData.generate(seed: g, options: o.generate)
            if let out = o.saveGenerated {
                try data.write(to: URL(fileURLWithPath: out))
                path = out
            } else if o.reference != nil {
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dvt-planted-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                tempDir = dir
                path = dir.appendingPathComponent("planted.safetensors").path
                try data.write(to: URL(fileURLWithPath: path!))
            }
        } else {
            guard let file = o.file else { throw ConfigError("bench planted: give a planted file or a generate seed") }
            data = try PlantedData.load(contentsOf: URL(fileURLWithPath: file))
        }
        defer { if let tempDir { try? FileManager.default.removeItem(at: tempDir) } }
        let v = data.raw.shape
        log(
            "planted \(o.generateSeed.map { "generated seed \($0)" } ?? o.file!): \(v[0]) views, \(v[1])x\(v[2]) tokens, C \(v[3]); "
                + "levels \(s.nLevels)x\(s.nFeaturesPerLevel), table 2^\(s.log2HashmapSize), res \(s.baseResolution)..\(s.maxResolution), "
                + "\(s.numIters) iters (warmup \(s.effectiveWarmupIters)), batch \(s.pixelBsz), table Adam \(s.hashTableAdam.rawValue), loss scale \(s.lossScale), wd \(s.weightDecay), coord jitter \(s.coordJitter), seed \(o.seed), threads \(Parallel.threads)"
        )
        let (ours, result) = try run(data, settings: s, seed: o.seed, quiet: !o.verbose, valFreq: o.valEvery)
        log(String(format: "ours final loss %.6f", result.finalLoss))
        log(header)
        log(format(ours))
        if let runner = o.reference, let path {
            let theirs = try runReference(runner, file: path, settings: s, seed: o.seed)
            log(format(theirs))
            log(String(format: "speed-up (torch ms/step / ours): %.2fx", theirs.msPerStep / ours.msPerStep))
        }
    }
}
