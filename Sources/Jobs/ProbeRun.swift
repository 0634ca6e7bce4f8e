import DVT
import Formats
import Foundation
import Probe
import Settings
import TensorCore
import Vision

/// `dvt probe` and the probe step of `dvt run`: one linear head per method on frozen features,
/// trained on the train split, evaluated on val; writes `probe/<task>.json`, a few prediction
/// strips under `probe/visuals/`, and returns the table.
public struct ProbeRun {
    public var config: ResolvedConfig
    public var model: VisionTransformer
    public var task: ProbeTask
    public var layout: DatasetLayout
    public var root: URL
    public var methods: [String]
    public var options: ProbeOptions
    public var protocolName: String
    public var maxTrain: Int?
    public var maxVal: Int?
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public struct MethodResult: Sendable {
        public var method: String
        public var metrics: [(String, Double)]
        public var perClassIoU: [Double]
        public var training: ProbeTrainingSummary
    }

    public struct Outcome: Sendable {
        public var task: ProbeTask
        public var results: [MethodResult]
        public var json: URL
        public var table: String
    }

    /// Reads the `probe.*` keys, with CLI values (non-nil) taking precedence.
    public init(
        config: ResolvedConfig, model: VisionTransformer, task: ProbeTask? = nil, dataset: DatasetLayout? = nil, root: String? = nil,
        methods: String? = nil, official: Bool? = nil
    ) throws {
        let p = config.settings.probe
        self.config = config
        self.model = model
        let t = task ?? p.task, l = dataset ?? p.dataset
        guard let r = root ?? p.root else { throw ProbeDataError("the probe needs a dataset root (ROOT argument or probe.root)") }
        if (t == .depth) != (l == .nyu) {
            throw ProbeDataError(
                "task \(t.rawValue) does not fit dataset \(l.rawValue): depth reads the nyu layout, segmentation voc, ade20k or folder")
        }
        self.task = t
        self.layout = l
        self.root = URL(fileURLWithPath: r)
        self.methods = (methods ?? p.methods).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !self.methods.isEmpty else { throw ProbeDataError("no probe methods given") }
        let isOfficial = official ?? p.official
        var o = isOfficial ? ProbeOptions.official(t) : ProbeOptions.cpu(t)
        if let v = p.iterations { o.iterations = v }
        if let v = p.batchSize { o.batchSize = v }
        if let v = p.lr { o.lr = v }
        o.seed = UInt64(config.settings.run.seed)
        options = o
        protocolName = isOfficial ? "official" : "cpu"
        maxTrain = p.maxTrain
        maxVal = p.maxVal
    }

    var outDir: URL { URL(fileURLWithPath: config.settings.run.outputDir).appendingPathComponent("probe") }

    /// Builds the cached examples of one split for one method.
    func examples(
        _ dataset: ProbeDataset, _ samples: [ProbeSample], maps: [(patch: Tensor, cls: Tensor?)],
        trainSize: (Int, Int)
    ) throws -> [ProbeExample] {
        try zip(samples, maps).map { s, m in
            let img = try RGBImage(contentsOf: s.image)
            var features = m.patch
            if task == .depth {
                guard let cls = m.cls else { throw ProbeDataError("the depth head needs a class token; \(model.config.name) has none") }
                features = DepthHead.withClassToken(m.patch, cls)
            }
            var e = ProbeExample(
                name: s.name, features: features, trainHeight: trainSize.0, trainWidth: trainSize.1,
                evalHeight: img.height, evalWidth: img.width)
            switch task {
            case .segmentation:
                e.evalLabels = try dataset.labels(s, width: img.width, height: img.height)
                e.trainLabels = nearestResize(e.evalLabels, height: img.height, width: img.width, toHeight: trainSize.0, toWidth: trainSize.1)
            case .depth:
                e.evalDepth = try dataset.depth(s, width: img.width, height: img.height)
                e.trainDepth = nearestResize(e.evalDepth, height: img.height, width: img.width, toHeight: trainSize.0, toWidth: trainSize.1)
            }
            return e
        }
    }

    public func run() throws -> Outcome {
        // The head's memory per class count at this run's geometry (val images not yet read).
        let channels = model.config.embedDim,
            (h, w) = InputGeometry.inputSize(
                config.settings.run.inputSize,
                stride: InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize))
        let (gh, gw) = model.grid(height: h, width: w, stride: config.settings.run.strideSize), tokens = gh * gw
        var dataset = try ProbeDataset.open(
            layout, root: root,
            headBytes: { k in
                SegmentationHead.memoryBytes(
                    classes: k, channels: channels, batch: options.batchSize, trainPixels: h * w, tokens: tokens, evalPixels: 0)
            })
        guard dataset.task == task else { throw ProbeDataError("dataset \(layout.rawValue) is a \(dataset.task.rawValue) dataset") }
        if let n = maxTrain { dataset.train = Array(dataset.train.prefix(n)) }
        if let n = maxVal { dataset.val = Array(dataset.val.prefix(n)) }
        log(
            "probe: \(task.rawValue) on \(layout.rawValue) at \(root.path): \(dataset.train.count) train, \(dataset.val.count) val images; \(protocolName) protocol, \(options.iterations) iterations of \(options.batchSize) maps"
        )
        var features = try ProbeFeatures(config: config, model: model, layout: layout, log: log)
        features.quiet = true
        let trainSize = features.inputSize
        var results: [MethodResult] = []
        var predictions: [[Any]] = []
        for method in methods {
            log("probe [\(method)]: features")
            let train = try examples(dataset, dataset.train, maps: try features.maps(method, dataset.train), trainSize: trainSize)
            let val = try examples(dataset, dataset.val, maps: try features.maps(method, dataset.val), trainSize: trainSize)
            try checkTargets(dataset, method: method, train: train, val: val)
            log("probe [\(method)]: training the head on \(train.count) cached maps of shape \(train[0].features.shape)")
            switch task {
            case .segmentation:
                let f = train[0].features.shape
                try dataset.checkSegmentationMemory(
                    channels: f[2], batch: options.batchSize, trainHeight: trainSize.0, trainWidth: trainSize.1,
                    tokens: f[0] * f[1], evalPixels: val.map { $0.evalHeight * $0.evalWidth }.max() ?? 0)
                let (head, summary) = try ProbeTrainer.trainSegmentation(train, classes: dataset.classes, options: options, log: log)
                let m = ProbeTrainer.evaluateSegmentation(head, val, classes: dataset.classes)
                results.append(
                    MethodResult(
                        method: method, metrics: [("mIoU", m.mIoU), ("mAcc", m.mAcc), ("aAcc", m.aAcc)],
                        perClassIoU: m.iou, training: summary))
                predictions.append(val.prefix(3).map { ProbeTrainer.predict(head, $0) })
            case .depth:
                let (head, summary) = try ProbeTrainer.trainDepth(train, options: options, log: log)
                let m = ProbeTrainer.evaluateDepth(head, val)
                results.append(
                    MethodResult(
                        method: method,
                        metrics: [
                            ("RMSE", m.rmse), ("AbsRel", m.absRel), ("log10", m.log10),
                            ("RMSE_log", m.rmseLog), ("δ1", m.delta1), ("δ2", m.delta2), ("δ3", m.delta3),
                        ],
                        perClassIoU: [], training: summary))
                predictions.append(val.prefix(3).map { ProbeTrainer.predictDepth(head, $0) })
            }
            if let r = results.last, let bad = r.metrics.first(where: { !$0.1.isFinite }) {
                throw ProbeDataError(
                    "probe [\(method)]: the val metric \(bad.0) is \(bad.1) (\(r.metrics.map { "\($0.0) \($0.1)" }.joined(separator: ", "))); "
                        + "no result is written for a run with non-finite metrics")
            }
        }
        let figures = try writeVisuals(dataset, predictions)
        let json = try writeJSON(dataset, results, figures)
        return Outcome(task: task, results: results, json: json, table: ProbeRun.table(results))
    }

    /// Refuses splits in which no pixel can be learnt or scored: masks whose every pixel is the
    /// ignore label 255, or depth maps with no depth inside DepthMetrics' (min, max) range (e.g. all
    /// 0), which would otherwise end in NaN metrics.
    func checkTargets(_ dataset: ProbeDataset, method: String, train: [ProbeExample], val: [ProbeExample]) throws {
        for (split, examples) in [("train", train), ("val", val)] {
            let valid: Int
            let why: String
            switch task {
            case .segmentation:
                valid = examples.reduce(0) { n, e in n + e.evalLabels.reduce(0) { $0 + ($1 == ProbeDataset.ignoreIndex ? 0 : 1) } }
                why = "every pixel of its \(examples.count) mask(s) is the ignore label \(ProbeDataset.ignoreIndex)"
            case .depth:
                valid = examples.reduce(0) { $0 + DepthMetrics.validPixels(gt: $1.evalDepth) }
                why = String(
                    format: "no depth of its %d map(s) lies inside (%g, %g) m (e.g. every value is 0)",
                    examples.count, DepthMetrics.nyuMinDepth, DepthMetrics.nyuMaxDepth)
            }
            if valid == 0 {
                throw ProbeDataError(
                    "probe [\(method)]: no valid pixel was left in the \(split) split of \(root.path): \(why); "
                        + "its metrics would be NaN")
            }
        }
    }

    /// The method × metric table as Markdown.
    public static func table(_ results: [MethodResult]) -> String {
        guard let first = results.first else { return "" }
        var s = "| method | " + first.metrics.map(\.0).joined(separator: " | ") + " | train maps/s |\n"
        s += "|---|" + String(repeating: "---:|", count: first.metrics.count + 1) + "\n"
        for r in results {
            s +=
                "| \(r.method) | " + r.metrics.map { String(format: "%.4f", $0.1) }.joined(separator: " | ")
                + String(format: " | %.0f |\n", r.training.mapsPerSecond)
        }
        return s
    }

    /// input | ground truth | one prediction per method, for the first val images.
    func writeVisuals(_ dataset: ProbeDataset, _ predictions: [[Any]]) throws -> [[String: String]] {
        let dir = outDir.appendingPathComponent("visuals")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var figures: [[String: String]] = []
        for (k, s) in dataset.val.prefix(3).enumerated() {
            let img = try RGBImage(contentsOf: s.image)
            let (th, tw) = Visuals.displaySize(height: img.height, width: img.width, target: 160)
            var tiles = [img.resized(width: tw, height: th)]
            switch task {
            case .segmentation:
                let palette = SyntheticScenes.vocPalette
                func paint(_ labels: [Int32]) -> RGBImage {
                    var out = RGBImage(width: img.width, height: img.height)
                    for (i, y) in labels.enumerated() {
                        let c = Int(y == 255 ? 255 : y % 255)
                        // Blend 60% class colour over the image so the overlay shows what was segmented.
                        for ch in 0..<3 {
                            let v = 0.4 * Double(img.pixels[i * 3 + ch]) + 0.6 * Double(palette[c * 3 + ch])
                            out.pixels[i * 3 + ch] = UInt8(min(255, v))
                        }
                    }
                    return out.resized(width: tw, height: th)
                }
                tiles.append(paint(try dataset.labels(s, width: img.width, height: img.height)))
                for p in predictions { if let labels = p[k] as? [Int32] { tiles.append(paint(labels)) } }
            case .depth:
                let gt = try dataset.depth(s, width: img.width, height: img.height)
                let valid = gt.filter { $0 > 0 }
                let range = (valid.min() ?? 0, valid.max() ?? 10)
                func heat(_ d: [Float]) -> RGBImage {
                    Visuals.heatmap(Tensor(d, shape: [img.height, img.width]), range: range).resized(width: tw, height: th)
                }
                tiles.append(heat(gt))
                for p in predictions { if let d = p[k] as? [Float] { tiles.append(heat(d)) } }
            }
            let name = "\(task.rawValue)_\(s.name.replacingOccurrences(of: "/", with: "_")).png"
            try Visuals.hstrip(tiles).write(to: dir.appendingPathComponent(name))
            figures.append([
                "file": "visuals/\(name)",
                "caption": "\(s.name): input | ground truth | " + methods.joined(separator: " | "),
            ])
        }
        return figures
    }

    func writeJSON(_ dataset: ProbeDataset, _ results: [MethodResult], _ figures: [[String: String]]) throws -> URL {
        func clean(_ v: Double) -> Any { v.isFinite ? v : NSNull() }
        let optionsJSON = try JSONSerialization.jsonObject(with: JSONEncoder().encode(options))
        let obj: [String: Any] = [
            "task": task.rawValue, "dataset": layout.rawValue, "root": root.path, "protocol": protocolName,
            "model": model.config.name, "random_init": model.randomInitSeed.map { $0 as Any } ?? NSNull(),
            "classes": dataset.classNames, "train_images": dataset.train.count, "val_images": dataset.val.count,
            "options": optionsJSON,
            "metric_names": results.first?.metrics.map(\.0) ?? [],
            "methods": results.map { r in
                [
                    "method": r.method,
                    "metrics": Dictionary(uniqueKeysWithValues: r.metrics.map { ($0.0, clean($0.1)) }),
                    "metric_values": r.metrics.map { clean($0.1) },
                    "per_class_iou": r.perClassIoU.map(clean),
                    "training": [
                        "iterations": r.training.iterations, "seconds": r.training.seconds,
                        "maps_per_second": r.training.mapsPerSecond, "final_loss": clean(r.training.finalLoss),
                    ],
                ] as [String: Any]
            },
            "figures": figures,
        ]
        let url = outDir.appendingPathComponent("\(task.rawValue).json")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        try AtomicFile.writeJSON(obj, to: url)
        return url
    }
}
