import DVT
import Formats
import Foundation
import NN
import Report
import Settings
import TensorCore
import Training
import Vision

/// `dvt run CONFIG`: stage 1 over the training and validation images, SRT features, stage 2,
/// export, denoising of the validation images, the metrics table and the HTML report. Each
/// step skips work whose outputs are complete, so rerunning after a crash resumes.
public final class Pipeline {
    public let config: ResolvedConfig
    public let model: VisionTransformer
    public let root: URL
    public let paths: RunPaths
    public var quiet = false
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// The command line that started the run, for the run record.
    public var commandLine: [String] = CommandLine.arguments
    /// The config file the run was started from (also copied, resolved, to config.yaml).
    public var configFile: String?

    public struct StepTiming: Sendable, Codable {
        public var step: String
        public var seconds: Double
        public var note: String
    }

    public private(set) var timings: [StepTiming] = []
    /// Images that failed in stage 1 or SRT; `dvt run` exits non-zero when there are any.
    public private(set) var failures: [JobFailure] = []

    public init(config: ResolvedConfig, model: VisionTransformer) {
        self.config = config
        self.model = model
        root = URL(fileURLWithPath: config.settings.run.outputDir)
        paths = RunPaths(root: root, model: config.settings.run.model)
    }

    var layer: Int { (try? Stage1Job.layer(config: config, model: model)) ?? model.config.depth - 1 }

    func timed<T>(_ step: String, _ body: () throws -> (T, String)) rethrows -> T {
        let t0 = Date()
        log("== \(step)")
        let (value, note) = try body()
        let dt = Date().timeIntervalSince(t0)
        timings.append(StepTiming(step: step, seconds: dt, note: note))
        log(String(format: "== %@ done in %@%@", step as NSString, Progress.format(seconds: dt) as NSString, note.isEmpty ? "" : ": \(note)"))
        return value
    }

    /// Runs every step; returns the report's path.
    @discardableResult
    // Long on purpose: the six steps of `dvt run` in order, each a short block with its skip rule.
    public func run() throws -> URL {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for path in AtomicFile.removeStaleTemporaries(under: root) { log("removed a partial file left by a killed run: \(path)") }
        try writeRunRecord()
        guard let trainList = config.settings.run.dataList else { throw JobsError.input("dvt run needs data_list (the training images)") }
        let train = try ImageSource.items(from: trainList, root: config.settings.run.dataRoot)
        let val = try config.settings.run.valList.map { try ImageSource.items(from: $0, root: config.settings.run.dataRoot) } ?? []
        let all = train + val.filter { v in !train.contains { $0.relativeStem == v.relativeStem } }

        // 1. Stage 1 on every image (validation images too: their stage-1 maps are the
        //    stage-2 validation targets and a row of the metrics table).
        let stage1 = try timed("stage 1 (\(all.count) images)") { () -> (JobReport, String) in
            let job = try Stage1Job(config: config, model: model)
            job.quiet = quiet
            job.saveDecomposition = true
            job.log = log
            let r = try job.run(items: all)
            return (r, r.summary)
        }
        if !stage1.failures.isEmpty { log("stage 1: \(stage1.failures.count) image(s) failed; they are left out of what follows") }
        failures += stage1.failures

        // 2. SRT on the same images, as a baseline and as stage-2 targets when asked.
        if config.settings.srt.enabled || config.settings.stage2.targets == .srt {
            try timed("SRT") { () -> ((), String) in
                var options = SRT.Options(config.settings.srt, layer: layer, stride: config.settings.run.strideSize)
                options.parallelViews = true  // the pipeline runs nothing else meanwhile
                let (sh, sw) = InputGeometry.inputSize(
                    config.settings.run.inputSize,
                    stride: InputGeometry.stride(options.stride, patchSize: model.config.patchSize))
                var job = SRTJob(srt: try SRT(model: model, options: options), resolution: .token, height: sh, width: sw)
                job.fast = options.aggregate == .mean
                let todo = all.filter { !FileManager.default.fileExists(atPath: paths.srt($0.relativeStem).path) }
                let out = root.appendingPathComponent("\(FeatureTree.srt)/\(paths.model)")
                let r = try job.run(items: todo, outDir: out, showProgress: !quiet, log: log)
                failures += r.failures
                return ((), "\(r.written) written, \(all.count - todo.count) already present, \(r.failures.count) failed")
            }
        }

        // 3. Stage 2, resumed from its last checkpoint if one exists; skipped when its
        //    exported denoiser is newer than every checkpoint.
        let stage2Dir = Stage2Runner.runDirectory(config: config)
        let denoiserFile = stage2Dir.appendingPathComponent("denoiser.safetensors")
        let inputs = stage2Inputs(train)
        let inputsFile = stage2Dir.appendingPathComponent("inputs.json")
        if FileManager.default.fileExists(atPath: denoiserFile.path) {
            try checkStage2Inputs(inputs, recorded: inputsFile, denoiser: denoiserFile)
            // A run killed after the denoiser but before its curve (older versions wrote them in that order).
            if !FileManager.default.fileExists(atPath: stage2Dir.appendingPathComponent("loss_curve.png").path) {
                let curve = try Stage2Runner.writeLossCurve(runDirectory: stage2Dir)
                log("stage2: wrote \(curve.path) (missing from a stopped run)")
            }
            timings.append(StepTiming(step: "stage 2", seconds: 0, note: "skipped: \(denoiserFile.path) exists"))
            log("== stage 2: skipped, \(denoiserFile.path) exists and was trained on these inputs")
        } else {
            try timed("stage 2") { () -> ((), String) in
                let latest = stage2Dir.appendingPathComponent("checkpoints/latest.safetensors")
                let outcome = try Stage2Runner.run(
                    config: config, resume: FileManager.default.fileExists(atPath: latest.path),
                    quiet: quiet, log: log)
                try AtomicFile.writeJSON(inputs, to: inputsFile)
                return ((), String(format: "final loss %.5f, %.1f ms/step", outcome.summary.finalLoss, outcome.summary.msPerStep))
            }
        }

        // 4. Denoise the validation images' raw maps with the exported denoiser.
        let denoiser = try Denoiser.load(denoiserFile)
        denoiser.precision = config.settings.run.precision
        let evalItems = val.isEmpty ? train : val
        try timed("denoise (\(evalItems.count) images)") { () -> ((), String) in
            var engine = ImageJobEngine(output: root.appendingPathComponent("stage2_features"), log: log)
            engine.quiet = true
            let r = try engine.run(DenoiseRawMaps(paths: paths, denoiser: denoiser), items: evalItems)
            failures += r.failures
            return ((), "\(r.written) written")
        }

        // 5. The report's measurements (every block, flip equivariance), the metrics and 6. the report.
        let reportItems = Array(evalItems.prefix(Report.maxImages))
        let measured = try timed("report features (\(reportItems.count) images)") { () -> (ReportFeatures.Outcome, String) in
            let srt =
                config.settings.srt.enabled
                ? try SRT(model: model, options: SRT.Options(config.settings.srt, layer: layer, stride: config.settings.run.strideSize)) : nil
            let r = try ReportFeatures(
                config: config, model: model, paths: paths, layer: layer, denoiser: denoiser, srt: srt,
                stage1: try Stage1Job(config: config, model: model)
            ).run(items: reportItems)
            return (r, "\(r.strength.count) blocks, viewer blocks \(r.viewerLayers.map(String.init).joined(separator: ", "))")
        }
        let rows = try timed("metrics") { () -> ([ArtifactMetrics.Row], String) in
            var rows = try metrics(evalItems)
            for i in rows.indices { rows[i].flipEquivariance = measured.equivariance[rows[i].label] }
            try AtomicFile.write(Data(ArtifactMetrics.markdown(rows).utf8), to: root.appendingPathComponent("metrics.md"))
            return (rows, "\(rows.count) methods over \(evalItems.count) images")
        }
        if config.settings.probe.enabled {
            try timed("probe") { () -> ((), String) in
                var probe = try ProbeRun(config: config, model: model)
                probe.log = log
                let outcome = try probe.run()
                log(outcome.table)
                return ((), outcome.json.path)
            }
        }
        let report = try timed("report") { () -> (URL, String) in
            let url = try Report(run: reportRun(measured), items: evalItems.map { ($0.relativeStem, $0.url) }, rows: rows).write()
            return (url, url.path)
        }
        try writeRunRecord()
        return report
    }

    /// The error a finished run with failed images ends with (a non-zero exit status), or nil.
    public var incomplete: JobsError? { failures.isEmpty ? nil : .incomplete(failures) }

    /// What stage 2 is trained on: the training images whose stage-1 maps exist, and a hash of
    /// the resolved config. Recorded beside the denoiser so that a rerun can tell whether the
    /// denoiser it finds is still the one this run would train (after a failed image is fixed, a
    /// denoiser trained without it must not be kept).
    func stage2Inputs(_ train: [ImageItem]) -> [String: Any] {
        let stems = train.map(\.relativeStem).filter { FileManager.default.fileExists(atPath: paths.denoised($0).path) }.sorted()
        return ["images": stems, "config_fnv1a": String(FNV1a.hash(utf8: config.yaml), radix: 16)]
    }

    /// Stops with a clear message when the denoiser on disk was trained on other inputs.
    func checkStage2Inputs(_ inputs: [String: Any], recorded url: URL, denoiser: URL) throws {
        let dir = url.deletingLastPathComponent().path
        let remedy = "remove \(dir) to retrain stage 2, or set another output_dir"
        guard let data = FileManager.default.contents(atPath: url.path),
            let old = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw JobsError.mismatch("\(denoiser.path) exists but \(url.path) does not record what it was trained on; \(remedy)")
        }
        let was = old["images"] as? [String] ?? [], now = inputs["images"] as? [String] ?? []
        if was != now {
            let added = Set(now).subtracting(was).sorted(), gone = Set(was).subtracting(now).sorted()
            throw JobsError.mismatch(
                "\(denoiser.path) was trained on \(was.count) image(s), this run has \(now.count) with stage-1 maps"
                    + (added.isEmpty ? "" : "; new: \(added.prefix(5).joined(separator: ", "))")
                    + (gone.isEmpty ? "" : "; missing now: \(gone.prefix(5).joined(separator: ", "))") + "; \(remedy)")
        }
        if old["config_fnv1a"] as? String != inputs["config_fnv1a"] as? String {
            throw JobsError.mismatch("\(denoiser.path) was trained with another configuration (config.yaml changed since); \(remedy)")
        }
    }

    /// What the report shows of this run.
    func reportRun(_ measured: ReportFeatures.Outcome) -> Report.Run {
        let p = paths
        var run = Report.Run(
            root: root, title: config.settings.run.outputDir, model: config.settings.run.model, layer: layer,
            inputSize: config.settings.run.inputSize, seed: config.settings.run.seed, randomInitSeed: model.randomInitSeed,
            configYAML: config.yaml, stage2Metrics: Stage2Runner.runDirectory(config: config).appendingPathComponent("metrics.jsonl"),
            timings: timings.map { ($0.step, $0.seconds, $0.note) },
            featureMaps: { [p.raw($0), p.srt($0), p.denoised($0), p.extra("stage2_features", $0)] })
        run.weights = model.randomInitSeed == nil ? config.settings.run.weights : nil
        run.positionResampling = model.positionResamplingNote
        for block in measured.viewerLayers where block != layer {
            run.extraLayers[block] = { p.extra(ReportFeatures.layerTree(block), $0) }
        }
        run.stage1Extras = { (p.extra("shared_artifacts", $0), p.extra("residual", $0)) }
        run.layerStrength = measured.strength
        run.equivarianceNote =
            "Measured on \(measured.images) evaluation image(s) and their mirrors at block \(layer). "
            + "For stage 1, F of the mirrored image is a second fit (same seed and settings), so its error also holds the fit's own variation."
        if let weights = config.settings.run.weights {
            let size = (try? FileManager.default.attributesOfItem(atPath: weights)[.size] as? Int) ?? nil
            run.provenance.append(("file", weights + (size.map { " (\($0) bytes)" } ?? "")))
            run.provenance += Pipeline.provenanceRecord(weights: weights)
        } else if let seed = model.randomInitSeed {
            run.provenance.append(("weights", "seeded random initialisation (random_init: \(seed)); no pretrained weights"))
        }
        return run
    }

    /// What `WEIGHTS.provenance.json` beside a weight file says of it (written by whatever fetched
    /// the file: package, member, sha256, licence, source, note, in that order, then any other
    /// key), or nothing when there is no such file. Values are shown as given, not re-checked.
    static func provenanceRecord(weights: String) -> [(String, String)] {
        guard let data = FileManager.default.contents(atPath: weights + ".provenance.json"),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [] }
        let known = ["package", "member", "sha256", "licence", "source", "note"]
        return (known + obj.keys.filter { !known.contains($0) }.sorted()).compactMap { key in obj[key].map { (key, "\($0)") } }
    }

    /// The metrics table over the evaluation images: raw, SRT, stage 1 and stage 2.
    func metrics(_ items: [ImageItem]) throws -> [ArtifactMetrics.Row] {
        var rows: [ArtifactMetrics.Row] = []
        for (label, tree) in [
            ("raw ViT", FeatureTree.raw), ("SRT", FeatureTree.srt),
            ("DVT stage 1", FeatureTree.denoised), ("DVT stage 2", "stage2_features"),
        ] {
            let maps = try items.compactMap { item -> Tensor? in
                let url = paths.extra(tree, item.relativeStem)
                return FileManager.default.fileExists(atPath: url.path) ? try Npy.read(url) : nil
            }
            if maps.count >= 2 { rows.append(try ArtifactMetrics.row(label: label, maps: maps)) }
        }
        return rows
    }

    /// run.json: the exact command, the resolved config, versions and seed, so any result can be
    /// reproduced; timings are added as steps finish.
    func writeRunRecord() throws {
        try AtomicFile.write(Data(config.yaml.utf8), to: root.appendingPathComponent("config.yaml"))
        var record: [String: Any] = [
            "command": commandLine,
            "config_file": configFile ?? NSNull(),
            "working_directory": FileManager.default.currentDirectoryPath,
            "dvt_version": DVTVersion.string,
            "swift": DVTVersion.compiler,
            "seed": config.settings.run.seed,
            "model": config.settings.run.model,
            "weights": config.settings.run.weights ?? NSNull(),
            "threads": Parallel.threads,
            "precision": config.settings.run.precision.rawValue,
            "host": ProcessInfo.processInfo.hostName,
            "timings": timings.map { ["step": $0.step, "seconds": $0.seconds, "note": $0.note] },
        ]
        record.merge(model.recordProvenance) { $1 }
        try AtomicFile.writeJSON(record, to: root.appendingPathComponent("run.json"))
    }
}

/// The toolkit's version (`dvt --version`, run.json) and the compiler that built it.
public enum DVTVersion {
    public static let string = "0.1.0"
    public static var compiler: String {
        #if compiler(>=6.3)
        return "Swift 6.3+"
        #else
        return "Swift < 6.3"
        #endif
    }
}

/// Step 4 of `dvt run`: the validation images' stage-1 raw maps through the exported denoiser,
/// into stage2_features/. Images without a raw map (failed in stage 1) are passed over.
struct DenoiseRawMaps: ImageJobClient {
    let paths: RunPaths
    let denoiser: Denoiser
    var label: String { "denoise" }
    var batchSize: Int { 1 }

    func isDone(_ item: ImageItem) -> Bool {
        FileManager.default.fileExists(atPath: paths.extra("stage2_features", item.relativeStem).path)
            || !FileManager.default.fileExists(atPath: paths.raw(item.relativeStem).path)
    }

    func prepare(_ item: ImageItem) throws -> Tensor { try Npy.read(paths.raw(item.relativeStem)) }  // (Gh, Gw, C)

    func forward(_ batch: [Tensor]) throws -> [Tensor] { withNoGrad { batch.map { denoiser.denoise($0) } } }

    func finish(_ item: ImageItem, _ raw: Tensor, _ clean: Tensor, position: Int) throws -> ImageJobOutput {
        let dst = paths.extra("stage2_features", item.relativeStem)
        try FileManager.default.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Npy.write(clean, to: dst)
        return ImageJobOutput(files: [dst])
    }
}
