import DVT
import Formats
import Foundation
import Settings
import TensorCore

/// `dvt stage1 --features FILE`: stage 1 on precomputed view features (the planted layout: a
/// safetensors file with raw (V+1, Gh, Gw, C) and coords (V+1, Gh, Gw, 2)) instead of images.
/// Writes OUT/raw_features/features/<file stem>.npy, denoised_features/… and shared_artifacts/….
public enum Stage1FeatureFile {
    public struct Result {
        public var finalLoss: Double
        public var msPerStep: Double
        public var output: URL
        /// The scores against the planted truth when the file has it (clean_full, artifact).
        public var groundTruth: PlantedScore?
    }

    public static func run(_ url: URL, config: ResolvedConfig) throws -> Result {
        let file = try SafeTensorsFile(url: url)
        for key in ["raw", "coords"] where !file.contains(key) {
            throw JobsError.input(
                "\(url.path): no tensor '\(key)'; a feature file needs raw (V+1, H, W, C) and coords (V+1, H, W, 2) (the planted layout)")
        }
        let raw = try file.tensor("raw"), coords = try file.tensor("coords")
        let settings = config.settings.stage1
        try settings.validate()
        let r = try Stage1.fit(
            views: raw, coords: coords, settings: settings, seed: UInt64(config.settings.run.seed),
            quiet: false, printFreq: config.settings.stage1.printFreq,
            precision: config.settings.run.precision)
        let out = URL(fileURLWithPath: config.settings.run.outputDir)
        let stem = url.deletingPathExtension().lastPathComponent
        let tree = RunPaths(root: out, model: "features")
        for (t, dst) in [
            (r.output.raw, tree.raw(stem)), (r.output.denoised, tree.denoised(stem)),
            (r.output.sharedArtifacts, tree.extra("shared_artifacts", stem)),
        ] {
            try FileManager.default.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(t, to: dst)
        }
        var result = Result(finalLoss: r.finalLoss, msPerStep: r.msPerStep, output: out)
        if file.contains("clean_full") && file.contains("artifact") {
            let clean = try file.tensor("clean_full"), artifact = try file.tensor("artifact")
            result.groundTruth = PlantedScore(
                raw: r.output.raw, denoised: r.output.denoised, cleanFull: clean, artifact: artifact,
                learntArtifact: r.output.sharedArtifacts)
        }
        return result
    }
}
