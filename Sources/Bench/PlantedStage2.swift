import DVT
import Formats
import Foundation
import Jobs
import NN
import Settings
import TensorCore
import Training
import Vision

/// Both DVT stages on planted data with known truth (`dvt bench planted-stage2`).
///
/// Every case is a different "image" (its own clean field F, views and noise) seen through the
/// same "ViT" (one shared artifact G and residual direction, from `artifactSeed`), as DVT's
/// model assumes. Stage 1 runs per case and writes the usual feature trees; stage 2 then trains
/// through `Stage2Runner` on the first cases and is validated on the rest, whose clean truth is
/// known, so the denoiser is scored against the truth as well as against its stage-1 targets.
///
/// Layout under `output_dir`: `raw_features/planted/case_NNN.npy` (the whole-image view),
/// `denoised_features/planted/…` (stage 1's F), `truth_features/planted/…` (the planted F),
/// `train.txt`, `val.txt`, `stage2/…` (as `dvt stage2`), `planted_stage2.json`.
public enum PlantedStage2 {
    public static let model = "planted"
    public static let truthTree = "truth_features"

    public struct Options: Sendable {
        public var trainCases = 10
        public var valCases = 3
        /// Seed of the first case; case i uses firstSeed + i.
        public var firstSeed: UInt64 = 1000
        /// The "ViT": every case carries the artifact of this seed.
        public var artifactSeed: UInt64 = 0
        public var planted = PlantedData.Options()
        public var resume = false
        public var quiet = false
        public init() {}
    }

    /// Mean centred cosines to the planted truth over the validation cases, and stage 2's own
    /// validation numbers against its stage-1 targets.
    public struct Report: Sendable, Codable, Equatable {
        public var trainCases: Int
        public var valCases: Int
        public var stage2Steps: Int
        /// MSE + (1 - cos) to the stage-1 targets on the validation cases.
        public var identityLoss: Double
        public var stage2Loss: Double
        /// Centred cosine to the clean truth, mean over validation cases.
        public var rawVsTruth: Double
        public var stage1VsTruth: Double
        public var stage2VsTruth: Double
        /// Per-channel-centred cosine of (raw - output) with the planted artifact: how much of what
        /// stage 2 removed is the artifact (1 = exactly the artifact).
        public var removedVsArtifact: Double
        public var stage1SecondsPerCase: Double
    }

    public static func caseName(_ i: Int) -> String { String(format: "case_%03d", i) }

    /// Runs (or resumes) the experiment described by `config` (stage1.*, stage2.*, seed,
    /// output_dir) and `options`; `log` gets progress lines.
    // Long on purpose: the experiment's steps (generate, stage 1 per case, stage 2, score) in order.
    public static func run(
        config base: ResolvedConfig, options o: Options,
        log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws -> Report {
        guard o.trainCases >= 1, o.valCases >= 1 else {
            throw Stage2Error("planted stage 2 needs at least 1 training and 1 validation case (got \(o.trainCases) and \(o.valCases))")
        }
        let root = URL(fileURLWithPath: base.settings.run.outputDir)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for path in AtomicFile.removeStaleTemporaries(under: root) { log("removed a partial file left by a killed run: \(path)") }
        let settings = base.settings.stage1
        try settings.validate()
        let seed = UInt64(base.settings.run.seed)
        var planted = o.planted
        planted.artifactSeed = o.artifactSeed
        let total = o.trainCases + o.valCases
        func file(_ tree: String, _ i: Int) -> URL {
            FeatureTree.path(root: root, tree: tree, model: model, relativeStem: caseName(i))
        }

        // Stage 1, one case at a time; finished cases are kept, so a killed run resumes here.
        let progress = Progress(total: total, label: "planted stage 1", every: 1, quiet: o.quiet)
        var fitted: [Double] = []
        for i in 0..<total {
            let trees = [FeatureTree.raw, FeatureTree.denoised, truthTree]
            if trees.allSatisfy({ FileManager.default.fileExists(atPath: file($0, i).path) }) {
                progress.advance(note: "\(caseName(i)) (already done)")
                continue
            }
            let data = PlantedData.generate(seed: o.firstSeed &+ UInt64(i), options: planted)
            let start = Date()
            let result = try Stage1.fit(views: data.raw, coords: data.coords, settings: settings, seed: seed &+ UInt64(i))
            fitted.append(Date().timeIntervalSince(start))
            for tree in [truthTree, FeatureTree.denoised, FeatureTree.raw] {
                try FileManager.default.createDirectory(at: file(tree, i).deletingLastPathComponent(), withIntermediateDirectories: true)
            }
            // Raw last: a case counts as finished only when all three files exist.
            try Npy.write(data.cleanFull, to: file(truthTree, i))
            try Npy.write(result.output.denoised, to: file(FeatureTree.denoised, i))
            try Npy.write(result.output.raw, to: file(FeatureTree.raw, i))
            let cos = Metrics.centeredCosine(result.output.denoised, data.cleanFull)
            progress.advance(note: String(format: "%@ stage-1 cosine to truth %.4f", caseName(i), cos))
        }
        let names = (0..<total).map(caseName)
        let trainList = root.appendingPathComponent("train.txt"), valList = root.appendingPathComponent("val.txt")
        try AtomicFile.write(Data((names[..<o.trainCases].joined(separator: "\n") + "\n").utf8), to: trainList)
        try AtomicFile.write(Data((names[o.trainCases...].joined(separator: "\n") + "\n").utf8), to: valList)

        // Stage 2 through the same runner as `dvt stage2`, on these lists.
        var config = base
        try config.set("data_list", value: .string(trainList.path), source: "planted-stage2")
        try config.set("val_list", value: .string(valList.path), source: "planted-stage2")
        try config.set("data_root", value: .string(root.path), source: "planted-stage2")
        try config.set("model", value: .string(model), source: "planted-stage2")
        try config.set("stage2.targets", value: .string(DVTSettings.Stage2.Targets.stage1.rawValue), source: "planted-stage2")
        let outcome = try Stage2Runner.run(config: config, resume: o.resume, quiet: o.quiet, log: log)
        let denoiser = try Denoiser.load(outcome.denoiserFile)

        var raws: [Double] = [], s1: [Double] = [], s2: [Double] = [], removed: [Double] = []
        let artifact = PlantedData.generate(
            seed: o.artifactSeed,
            options: {
                var p = planted; p.views = 0; return p
            }()
        ).artifact
        for i in o.trainCases..<total {
            let raw = try Npy.read(file(FeatureTree.raw, i))  // (H, W, C)
            let truth = try Npy.read(file(truthTree, i))
            let target = try Npy.read(file(FeatureTree.denoised, i))
            let out = denoiser.denoise(raw)
            raws.append(Double(Metrics.centeredCosine(raw, truth)))
            s1.append(Double(Metrics.centeredCosine(target, truth)))
            s2.append(Double(Metrics.centeredCosine(out, truth)))
            removed.append(Double(Metrics.flatCenteredCosine(withNoGrad { raw - out }, artifact)))
        }
        func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(max(1, x.count)) }
        let v = outcome.summary.lastValidation
        guard let loss = v["loss"], let identity = v["identity_loss"] else {
            throw Stage2Error(
                "stage 2 reported no validation loss (val_freq \(config.settings.stage2.valFreq), num_iters \(config.settings.stage2.numIters))")
        }
        let report = Report(
            trainCases: o.trainCases, valCases: o.valCases, stage2Steps: outcome.summary.steps,
            identityLoss: identity, stage2Loss: loss, rawVsTruth: mean(raws), stage1VsTruth: mean(s1),
            stage2VsTruth: mean(s2), removedVsArtifact: mean(removed),
            stage1SecondsPerCase: fitted.isEmpty ? .nan : mean(fitted))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(try enc.encode(report), to: root.appendingPathComponent("planted_stage2.json"))
        return report
    }

    public static func format(_ r: Report) -> String {
        var s = String(format: "validation (%d held-out cases; stage 2 trained on %d for %d steps):\n", r.valCases, r.trainCases, r.stage2Steps)
        s += String(
            format: "  loss to stage-1 targets   identity %.5f   stage 2 %.5f  (%@)\n", r.identityLoss, r.stage2Loss,
            r.stage2Loss < r.identityLoss ? "below identity" : "NOT below identity")
        s += String(format: "  centred cosine to truth   raw %.4f   stage 1 %.4f   stage 2 %.4f\n", r.rawVsTruth, r.stage1VsTruth, r.stage2VsTruth)
        s += String(format: "  what stage 2 removed vs the planted artifact: cosine %.4f", r.removedVsArtifact)
        if r.stage1SecondsPerCase.isFinite { s += String(format: "\n  stage 1: %.1f s per case", r.stage1SecondsPerCase) }
        return s
    }
}
