import DVT
import Formats
import Foundation
import Jobs
import Probe
import Settings
import TensorCore
import Vision

/// `dvt bench probe`: planted segmentation. For each artifact strength, planted cases whose
/// clean field's regions carry one of K classes shared by all cases (PlantedSegmentation.swift)
/// go through stage 1 and stage 2 (`PlantedStage2.run`), and one linear segmentation head per
/// method (raw, stage 1, stage 2) is trained on the training cases' token maps and scored
/// (mIoU against the exact per-token labels) on the held-out cases. DVT's claim, measured with
/// ground truth: the raw features' mIoU falls as the artifact grows, the denoised ones' holds.
public enum PlantedProbeBench {
    public struct Options: Sendable {
        public var strengths: [Float] = [0.5, 1, 2, 4]
        public var trainCases = 10
        public var valCases = 4
        public var classes = 5
        public var firstSeed: UInt64 = 3000
        public var artifactSeed: UInt64 = 0
        public var probeIterations = 300
        public var grid = 16
        public var dim = 16
        public var views = 96
        public var quiet = true
        public init() {}
    }

    public struct Row: Sendable {
        public var strength: Float
        public var method: String
        public var mIoU: Double, mAcc: Double, aAcc: Double
        /// Centred cosine to the clean truth, mean over held-out cases.
        public var cosine: Double
        public var mapsPerSecond: Double
    }

    public static func run(
        config base: ResolvedConfig, options o: Options, json: URL,
        log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws -> [Row] {
        var rows: [Row] = []
        var figures: [[String: String]] = []
        let visuals = json.deletingLastPathComponent().appendingPathComponent("visuals")
        try FileManager.default.createDirectory(at: visuals, withIntermediateDirectories: true)
        let root = URL(fileURLWithPath: base.settings.run.outputDir)
        for s in o.strengths {
            var planted = PlantedData.Options()
            planted.grid = o.grid
            planted.dim = o.dim
            planted.views = o.views
            planted.artifactScale = s
            planted.segmentationClasses = o.classes
            var config = base
            let dir = root.appendingPathComponent(String(format: "strength_%.2f_k%d", s, o.classes))
            try config.set("output_dir", value: .string(dir.path), source: "bench probe")
            var p = PlantedStage2.Options()
            p.trainCases = o.trainCases
            p.valCases = o.valCases
            p.firstSeed = o.firstSeed
            p.artifactSeed = o.artifactSeed
            p.planted = planted
            p.quiet = o.quiet
            log(String(format: "== artifact strength %.2f: stage 1 on %d cases, stage 2", s, o.trainCases + o.valCases))
            _ = try PlantedStage2.run(config: config, options: p, log: log)
            let denoiser = try Denoiser.load(Stage2Runner.runDirectory(config: config).appendingPathComponent("denoiser.safetensors"))
            func file(_ tree: String, _ i: Int) -> URL {
                FeatureTree.path(root: dir, tree: tree, model: PlantedStage2.model, relativeStem: PlantedStage2.caseName(i))
            }
            let total = o.trainCases + o.valCases
            let labels = (0..<total).map { PlantedData.segmentationLabels(seed: o.firstSeed &+ UInt64($0), options: planted) }
            let raw = try (0..<total).map { try Npy.read(file(FeatureTree.raw, $0)) }
            let truth = try (0..<total).map { try Npy.read(file(PlantedStage2.truthTree, $0)) }
            let maps: [(String, [Tensor])] = [
                ("raw", raw),
                ("stage1", try (0..<total).map { try Npy.read(file(FeatureTree.denoised, $0)) }),
                ("stage2", raw.map { denoiser.denoise($0) }),
                ("truth", truth),
            ]
            for (method, m) in maps {
                let examples = (0..<total).map { i -> ProbeExample in
                    var e = ProbeExample(
                        name: PlantedStage2.caseName(i), features: m[i], trainHeight: o.grid, trainWidth: o.grid,
                        evalHeight: o.grid, evalWidth: o.grid)
                    e.trainLabels = labels[i]
                    e.evalLabels = labels[i]
                    return e
                }
                var po = ProbeOptions.cpu(.segmentation)
                po.iterations = o.probeIterations
                po.seed = UInt64(base.settings.run.seed)
                let (head, summary) = try ProbeTrainer.trainSegmentation(Array(examples[..<o.trainCases]), classes: o.classes, options: po)
                let metrics = ProbeTrainer.evaluateSegmentation(head, Array(examples[o.trainCases...]), classes: o.classes)
                let cos = (o.trainCases..<total).map { Double(Metrics.centeredCosine(m[$0], truth[$0])) }.reduce(0, +) / Double(o.valCases)
                rows.append(
                    Row(
                        strength: s, method: method, mIoU: metrics.mIoU, mAcc: metrics.mAcc, aAcc: metrics.aAcc,
                        cosine: cos, mapsPerSecond: summary.mapsPerSecond))
                log(
                    String(
                        format: "   %-7@ mIoU %.4f  cosine to truth %.4f  (%.0f maps/s)", method as NSString, metrics.mIoU, cos, summary.mapsPerSecond
                    ))
            }
            figures.append(try figure(strength: s, case: o.trainCases, maps: maps, labels: labels[o.trainCases], grid: o.grid, to: visuals))
        }
        try writeJSON(rows, figures: figures, options: o, to: json)
        return rows
    }

    /// One held-out case: labels | truth | raw | stage 1 | stage 2 (PCA with one basis fitted on
    /// all four) | token norms of raw and stage 2 on one scale.
    static func figure(
        strength s: Float, case i: Int, maps: [(String, [Tensor])], labels: [Int32], grid: Int,
        to dir: URL
    ) throws -> [String: String] {
        let byName = Dictionary(uniqueKeysWithValues: maps.map { ($0.0, $0.1[i]) })
        let ordered = ["truth", "raw", "stage1", "stage2"].map { byName[$0]! }
        let pca = try FeaturePCA(fitting: ordered)
        let side = 128
        let palette = SyntheticScenes.vocPalette
        var lab = RGBImage(width: grid, height: grid)
        for (t, y) in labels.enumerated() { for c in 0..<3 { lab.pixels[t * 3 + c] = palette[Int(y + 1) * 3 + c] } }
        var tiles = [Visuals.upsampleNearest(lab, width: side, height: side)]
        tiles += ordered.map { Visuals.upsampleNearest(pca.image($0), width: side, height: side) }
        let norms = [Visuals.norms(byName["raw"]!), Visuals.norms(byName["stage2"]!)]
        let lo = norms.map { $0.scalars.min() ?? 0 }.min() ?? 0, hi = norms.map { $0.scalars.max() ?? 1 }.max() ?? 1
        tiles += norms.map { Visuals.upsampleNearest(Visuals.heatmap($0, range: (lo, hi)), width: side, height: side) }
        let name = String(format: "planted_strength_%.2f.png", s)
        try Visuals.hstrip(tiles).write(to: dir.appendingPathComponent(name))
        let cos = ["raw", "stage1", "stage2"].map { String(format: "%@ %.3f", $0, Metrics.centeredCosine(byName[$0]!, byName["truth"]!)) }
        return [
            "file": "visuals/\(name)",
            "caption": String(
                format:
                    "artifact strength %.2f, held-out case: labels | truth | raw | stage 1 | stage 2 (PCA, one basis) | norms raw, stage 2 (one scale). Centred cosine to truth: ",
                s)
                + cos.joined(separator: ", "),
        ]
    }

    static func writeJSON(_ rows: [Row], figures: [[String: String]], options o: Options, to url: URL) throws {
        func clean(_ v: Double) -> Any { v.isFinite ? v : NSNull() }
        let obj: [String: Any] = [
            "task": "planted segmentation", "dataset": "planted", "root": "generated", "protocol": "cpu",
            "title": "Planted segmentation (ground truth): artifact strength × method",
            "note":
                "\(o.classes) classes shared by all cases, \(o.grid)×\(o.grid) tokens of \(o.dim) channels; 'truth' is the clean field itself (the ceiling)",
            "train_images": o.trainCases, "val_images": o.valCases,
            "options": ["iterations": o.probeIterations, "batchSize": 8],
            "metric_names": ["mIoU", "mAcc", "aAcc", "cosine to truth"],
            "methods": rows.map { r in
                [
                    "method": String(format: "strength %.2f · %@", r.strength, r.method),
                    "metric_values": [clean(r.mIoU), clean(r.mAcc), clean(r.aAcc), clean(r.cosine)],
                    "training": ["maps_per_second": r.mapsPerSecond],
                ] as [String: Any]
            },
            "figures": figures,
        ]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.writeJSON(obj, to: url)
    }

    public static func table(_ rows: [Row]) -> String {
        var s = "| artifact strength | method | mIoU | mAcc | aAcc | cosine to truth | probe maps/s |\n|---:|---|---:|---:|---:|---:|---:|\n"
        for r in rows {
            s += String(
                format: "| %.2f | %@ | %.4f | %.4f | %.4f | %.4f | %.0f |\n", r.strength, r.method as NSString, r.mIoU, r.mAcc, r.aAcc, r.cosine,
                r.mapsPerSecond)
        }
        return s
    }
}
