import DVT
import Formats
import Foundation
import Settings
import TensorCore

// `dvt stage1-prior`: a shared-artifact prior (`stage1.shared_artifacts_prior`) from earlier
// stage-1 runs. Letters: h × w token grid, C channels.

/// The mean of the G maps (OUT/shared_artifacts/<model>/<rel>.npy, written with
/// `stage1.save_extras: true`) of one or more stage-1 runs of one model, layer and input size.
public enum Stage1PriorJob {
    /// What `build` averaged.
    public struct Result {
        /// (h, w, C)
        public var prior: Tensor
        public var files: [URL]
    }

    /// The run's G maps, sorted by path.
    /// - Throws: `JobsError` when the run has no shared_artifacts tree for `model`.
    public static func sharedArtifactFiles(run: URL, model: String) throws -> [URL] {
        let dir = run.appendingPathComponent("shared_artifacts").appendingPathComponent(model)
        guard let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else {
            throw JobsError.input("\(run.path): no shared_artifacts/\(model)/ (run stage 1 with stage1.save_extras: true)")
        }
        let files = walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "npy" }.sorted { $0.path < $1.path }
        guard !files.isEmpty else { throw JobsError.input("\(dir.path): no .npy G maps (run stage 1 with stage1.save_extras: true)") }
        return files
    }

    /// The model, block and input size a run's features come from, read from its
    /// stage1_config.yaml: runs that differ in them have different G maps.
    static func geometry(run: URL) throws -> (model: String, layer: String, inputSize: [Int], stride: Int?) {
        let url = run.appendingPathComponent("stage1_config.yaml")
        guard FileManager.default.fileExists(atPath: url.path) else { throw JobsError.input("\(run.path): no stage1_config.yaml (not a stage-1 run)") }
        let s = try ConfigSchema.load(file: url).settings.run
        return (s.model, s.layerDepthRatio.map { "depth ratio \($0)" } ?? "layer \(s.layer)", s.inputSize, s.strideSize)
    }

    /// Averages every G map of `runs` (all of one model, block and input size, by their
    /// stage1_config.yaml) and writes the (h, w, C) mean to `out` atomically.
    /// - Throws: `JobsError` when the runs differ in model, block or input size or have no G
    ///   maps; `Stage1Error` when two maps differ in shape (naming both files).
    @discardableResult
    public static func build(runs: [URL], out: URL) throws -> Result {
        guard let first = runs.first else { throw JobsError.input("stage1-prior: no run directory given") }
        let g0 = try geometry(run: first)
        var files: [URL] = []
        for run in runs {
            let g = try geometry(run: run)
            guard g == g0 else {
                throw JobsError.mismatch(
                    "stage1-prior: \(run.path) is \(g.model), \(g.layer), input \(g.inputSize), stride \(g.stride.map(String.init) ?? "auto"); "
                        + "\(first.path) is \(g0.model), \(g0.layer), input \(g0.inputSize), stride \(g0.stride.map(String.init) ?? "auto"): a prior averages one model, block and input size")
            }
            files += try sharedArtifactFiles(run: run, model: g.model)
        }
        let maps = try files.map { try Npy.read($0) }
        let prior = try Stage1.meanSharedArtifacts(maps, names: files.map(\.path))
        guard prior.rank == 3 else { throw JobsError.input("stage1-prior: \(files[0].path) has shape \(prior.shape); G maps are (h, w, C)") }
        try FileManager.default.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Npy.write(prior, to: out)
        return Result(prior: prior, files: files)
    }
}
