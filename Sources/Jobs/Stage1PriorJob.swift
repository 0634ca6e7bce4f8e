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

    /// The run's G maps (every .npy under OUT/shared_artifacts/), sorted by path.
    /// - Throws: `JobsError` when the run has none.
    public static func sharedArtifactFiles(run: URL) throws -> [URL] {
        let dir = run.appendingPathComponent("shared_artifacts")
        let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)
        let files = (walker?.compactMap { $0 as? URL } ?? []).filter { $0.pathExtension == "npy" }.sorted { $0.path < $1.path }
        guard !files.isEmpty else {
            throw JobsError.input("\(run.path): no G maps under shared_artifacts/ (run stage 1 with stage1.save_extras: true)")
        }
        return files
    }

    /// The model, block and input size a run's features come from, read from its
    /// stage1_config.yaml (nil without one: `dvt stage1 --features` runs): runs that differ in
    /// them have different G maps.
    static func geometry(run: URL) throws -> String? {
        let url = run.appendingPathComponent("stage1_config.yaml")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let s = try ConfigSchema.load(file: url).settings.run
        let block = s.layerDepthRatio.map { "depth ratio \($0)" } ?? "layer \(s.layer)"
        return "\(s.model), \(block), input \(s.inputSize), stride \(s.strideSize.map(String.init) ?? "auto")"
    }

    /// Averages every G map of `runs` and writes the (h, w, C) mean to `out` atomically. Runs
    /// with a stage1_config.yaml must agree on model, block and input size; every map must have
    /// one shape.
    /// - Throws: `JobsError` when the runs differ in model, block or input size or have no G
    ///   maps; `Stage1Error` when two maps differ in shape (naming both files).
    @discardableResult
    public static func build(runs: [URL], out: URL) throws -> Result {
        guard !runs.isEmpty else { throw JobsError.input("stage1-prior: no run directory given") }
        var reference: (run: URL, geometry: String)? = nil
        var files: [URL] = []
        for run in runs {
            if let g = try geometry(run: run) {
                if let r = reference, r.geometry != g {
                    throw JobsError.mismatch(
                        "stage1-prior: \(run.path) is \(g); \(r.run.path) is \(r.geometry): a prior averages one model, block and input size")
                }
                reference = reference ?? (run, g)
            }
            files += try sharedArtifactFiles(run: run)
        }
        let prior = try Stage1.meanSharedArtifacts(count: files.count, name: { files[$0].path }, map: { try Npy.read(files[$0]) })
        guard prior.rank == 3 else { throw JobsError.input("stage1-prior: \(files[0].path) has shape \(prior.shape); G maps are (h, w, C)") }
        try FileManager.default.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Npy.write(prior, to: out)
        return Result(prior: prior, files: files)
    }
}
