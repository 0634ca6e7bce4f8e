import DVT
import Formats
import Foundation
import TensorCore
import Training
import Vision

/// The static HTML report of a pipeline run: visual strips per image, loss curves, the metrics
/// table, timings and the resolved config. Self-contained apart from relative links to PNGs in
/// the same folder.
public struct Report {
    /// What the report shows of a run, as plain values (the report sits below the job layer).
    public struct Run {
        /// The run directory; the report goes to `root/report/`.
        public var root: URL
        /// Title: the config's `output_dir`.
        public var title: String
        public var model: String
        public var layer: Int
        public var inputSize: [Int]
        public var seed: Int
        public var randomInitSeed: UInt64?
        /// The weight file (nil with random weights) and how the position embedding is resampled.
        public var weights: String?
        public var positionResampling: String?
        /// The resolved config as YAML.
        public var configYAML: String
        /// Stage 2's `metrics.jsonl`.
        public var stage2Metrics: URL
        public var timings: [(step: String, seconds: Double, note: String)]
        /// The raw, SRT, stage-1 and stage-2 maps of an image (by relative stem), in that order.
        public var featureMaps: (String) -> [URL]

        public init(root: URL, title: String, model: String, layer: Int, inputSize: [Int], seed: Int,
                    randomInitSeed: UInt64?, configYAML: String, stage2Metrics: URL,
                    timings: [(step: String, seconds: Double, note: String)], featureMaps: @escaping (String) -> [URL]) {
            self.root = root; self.title = title; self.model = model; self.layer = layer
            self.inputSize = inputSize; self.seed = seed; self.randomInitSeed = randomInitSeed
            self.configYAML = configYAML; self.stage2Metrics = stage2Metrics; self.timings = timings
            self.featureMaps = featureMaps
        }
    }

    let run: Run
    /// The evaluation images: (relative stem, image file).
    let items: [(relativeStem: String, url: URL)]
    let rows: [ArtifactMetrics.Row]

    public init(run: Run, items: [(relativeStem: String, url: URL)], rows: [ArtifactMetrics.Row]) {
        self.run = run
        self.items = items
        self.rows = rows
    }

    var dir: URL { run.root.appendingPathComponent("report") }

    public func write() throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let strips = try writeStrips()
        let curves = try writeCurves()
        let html = page(strips: strips, curves: curves)
        let url = dir.appendingPathComponent("index.html")
        try AtomicFile.write(Data(html.utf8), to: url)
        return url
    }

    /// input | raw | SRT | stage 1 | stage 2 (one PCA basis per image) | norms raw / stage 2.
    func writeStrips() throws -> [(String, String)] {
        var out: [(String, String)] = []
        for item in items.prefix(8) {
            let files = run.featureMaps(item.relativeStem)
            let maps = try files.map { FileManager.default.fileExists(atPath: $0.path) ? try Npy.read($0) : nil }
            guard let raw = maps[0] else { continue }
            let present = maps.compactMap { $0 }
            let pca = try FeaturePCA(fitting: present)
            let (th, tw) = Visuals.displaySize(height: raw.shape[0], width: raw.shape[1], target: 160)
            var tiles = [try RGBImage(contentsOf: item.url).resized(width: tw, height: th)]
            for m in maps { if let m { tiles.append(Visuals.upsampleNearest(pca.image(m), width: tw, height: th)) } }
            let norms = present.map { Visuals.norms($0) }
            let lo = norms.map { $0.scalars.min() ?? 0 }.min() ?? 0, hi = norms.map { $0.scalars.max() ?? 1 }.max() ?? 1
            tiles.append(Visuals.upsampleNearest(Visuals.heatmap(norms[0], range: (lo, hi)), width: tw, height: th))
            if let last = norms.last, present.count > 1 {
                tiles.append(Visuals.upsampleNearest(Visuals.heatmap(last, range: (lo, hi)), width: tw, height: th))
            }
            let name = item.relativeStem.replacingOccurrences(of: "/", with: "_") + ".png"
            try Visuals.hstrip(tiles).write(to: dir.appendingPathComponent(name))
            out.append((item.relativeStem, name))
        }
        return out
    }

    /// Stage 2's loss curve (from its metrics.jsonl) and stage 1's per-image final losses.
    func writeCurves() throws -> [(String, String)] {
        var out: [(String, String)] = []
        let metrics = run.stage2Metrics
        if FileManager.default.fileExists(atPath: metrics.path) {
            let h = try LossCurve.read(metrics: metrics)
            try LossCurve.render(h, title: "").write(to: dir.appendingPathComponent("stage2_loss.png"))
            out.append(("Stage 2: training loss (blue), validation loss (orange), identity baseline (dashed)", "stage2_loss.png"))
        }
        let manifest = run.root.appendingPathComponent("stage1_manifest.jsonl")
        if let text = try? String(contentsOf: manifest, encoding: .utf8) {
            var h = LossCurve.History()
            var i = 0
            for line in text.split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let loss = obj["final_loss"] as? Double else { continue }
                i += 1
                h.train.append(LossPoint(step: i, loss: loss))
            }
            if !h.train.isEmpty {
                try LossCurve.render(h, title: "").write(to: dir.appendingPathComponent("stage1_loss.png"))
                out.append(("Stage 1: final loss of each image (x axis: image index in the order processed)", "stage1_loss.png"))
            }
        }
        return out
    }

    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    func page(strips: [(String, String)], curves: [(String, String)]) -> String {
        var h = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>dvt report: \(esc(run.title))</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
        h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
        .warn { background: #fff3cd; border: 1px solid #e0b000; padding: 0.8em 1em; border-radius: 4px; }
        table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
        th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
        figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
        img { max-width: 100%; image-rendering: pixelated; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
        </style></head><body>
        <h1>dvt report</h1>
        <p class="sub">model <b>\(esc(run.model))</b>, layer \(run.layer), input \(run.inputSize.map(String.init).joined(separator: "×")), seed \(run.seed)</p>

        """
        if let w = run.weights {
            h += "<p class=\"sub\">weights <b>\(esc(URL(fileURLWithPath: w).lastPathComponent))</b> (\(esc(w)))"
                + (run.positionResampling.map { ", position embedding resampled \(esc($0))" } ?? "") + "</p>\n"
        }
        if let seed = run.randomInitSeed {
            h += "<p class=\"warn\"><b>Random weights.</b> \(esc(VisionTransformer.randomWeightsWarning(seed: seed)))</p>\n"
        }
        h += "<h2>Artifact metrics</h2>\n<p>Over the evaluation images. Lower is less position-dependent.</p>\n<table><tr><th>method</th><th>maps</th><th>grid</th><th>position-variance ratio</th><th>MIC<sub>eq</sub> channels vs position</th><th>MIC<sub>eq</sub> norm vs position</th></tr>\n"
        for r in rows {
            h += String(format: "<tr><td>%@</td><td class=n>%d</td><td>%@</td><td class=n>%.4f</td><td class=n>%.4f</td><td class=n>%.4f</td></tr>\n",
                        esc(r.label) as NSString, r.maps, r.grid.map(String.init).joined(separator: "×") as NSString,
                        r.positionVarianceRatio, r.channelMIC, r.normMIC)
        }
        h += "</table>\n<h2>Features</h2>\n<p>Each row: input | raw | SRT | stage 1 | stage 2 (PCA to RGB, one basis per image) | feature norm of raw and stage 2.</p>\n"
        for (name, file) in strips {
            h += "<figure><img src=\"\(esc(file))\" alt=\"\(esc(name))\"><figcaption>\(esc(name))</figcaption></figure>\n"
        }
        h += Downstream.html(root: run.root, reportDir: dir)
        h += "<h2>Training</h2>\n"
        for (title, file) in curves {
            h += "<figure><img src=\"\(esc(file))\" alt=\"\(esc(title))\"><figcaption>\(esc(title))</figcaption></figure>\n"
        }
        h += "<h2>Timings</h2>\n<table><tr><th>step</th><th>time</th><th>note</th></tr>\n"
        for t in run.timings {
            h += "<tr><td>\(esc(t.step))</td><td class=n>\(Progress.format(seconds: t.seconds))</td><td>\(esc(t.note))</td></tr>\n"
        }
        h += "</table>\n<h2>Configuration</h2>\n<pre>\(esc(run.configYAML))</pre>\n</body></html>\n"
        return h
    }
}
