import DVT
import Formats
import Foundation
import TensorCore
import Training
import Vision

/// The static HTML report of a pipeline run (docs/report.md): the artifact metrics with small
/// charts, the per-layer artifact strength, the token-similarity viewer, DVT's per-image panels
/// (PCA, norm, k-means, centre-patch similarity, and the decomposition raw = F + G + h), the
/// downstream probes, loss curves, timings and the resolved config. Works offline from file://;
/// every picture sits in a <figure> with a caption.
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
        /// Raw maps of an image at more blocks than `layer` (block → path), for the viewer's layer
        /// switch.
        public var extraLayers: [Int: (String) -> URL] = [:]
        /// Stage 1's shared artifact G and residual h of an image (written with stage1.save_extras).
        public var stage1Extras: ((String) -> (artifacts: URL, residual: URL))?
        /// Artifact strength of the raw features per block.
        public var layerStrength: [LayerStrength] = []
        /// Where the weights came from, as (field, value) lines.
        public var provenance: [(String, String)] = []
        /// What the flip-equivariance column measured.
        public var equivarianceNote = ""

        public init(
            root: URL, title: String, model: String, layer: Int, inputSize: [Int], seed: Int,
            randomInitSeed: UInt64?, configYAML: String, stage2Metrics: URL,
            timings: [(step: String, seconds: Double, note: String)], featureMaps: @escaping (String) -> [URL]
        ) {
            self.root = root; self.title = title; self.model = model; self.layer = layer
            self.inputSize = inputSize; self.seed = seed; self.randomInitSeed = randomInitSeed
            self.configYAML = configYAML; self.stage2Metrics = stage2Metrics; self.timings = timings
            self.featureMaps = featureMaps
        }
    }

    /// Artifact strength of one block's raw features over the evaluation images.
    public struct LayerStrength: Sendable {
        public var layer: Int
        public var positionVarianceRatio: Float
        public var flipEquivariance: Float
        public init(layer: Int, positionVarianceRatio: Float, flipEquivariance: Float) {
            self.layer = layer; self.positionVarianceRatio = positionVarianceRatio; self.flipEquivariance = flipEquivariance
        }
    }

    /// The four methods, in the order of `Run.featureMaps`.
    static let methods: [(key: String, label: String)] = [
        ("raw", "raw ViT"), ("srt", "SRT"), ("stage1", "DVT stage 1 (F)"),
        ("stage2", "DVT stage 2"),
    ]
    /// Images shown (the viewer and the panels): the first evaluation images.
    public static let maxImages = 8
    /// DVT draws 5 clusters (visualize_offline_denoised_samples, lines 157 and 166); one seed for all.
    static let clusters = 5
    static let clusterSeed: UInt64 = 0

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
        let loaded = try loadMaps()
        let panels = try writePanels(loaded)
        let viewer = try writeViewer(loaded)
        let html = page(panels: panels, viewer: viewer)
        let url = dir.appendingPathComponent("index.html")
        try AtomicFile.write(Data(html.utf8), to: url)
        return url
    }

    /// One image's maps: raw, SRT, stage 1, stage 2 (nil when absent).
    struct Loaded {
        var stem: String
        var url: URL
        var maps: [Tensor?]
        var input: RGBImage
    }

    func loadMaps() throws -> [Loaded] {
        var out: [Loaded] = []
        for item in items.prefix(Report.maxImages) {
            let maps = try run.featureMaps(item.relativeStem).map { FileManager.default.fileExists(atPath: $0.path) ? try Npy.read($0) : nil }
            guard maps.first.flatMap({ $0 }) != nil else { continue }
            out.append(Loaded(stem: item.relativeStem, url: item.url, maps: maps, input: try RGBImage(contentsOf: item.url)))
        }
        return out
    }

    static func fileStem(_ stem: String) -> String { stem.replacingOccurrences(of: "/", with: "_") }

    // MARK: DVT's panels

    struct Tile { var caption: String; var file: String }
    struct ImagePanels {
        var stem: String
        var input: Tile
        /// Per method: PCA, norm, clusters, centre similarity (nil: the method has no map).
        var methodRows: [(label: String, tiles: [Tile])?]
        /// raw = F + G + h, when G and h were saved.
        var decomposition: [Tile]
    }

    /// Writes token-resolution PNGs (the page scales them up with `image-rendering: pixelated`).
    func writePanels(_ loaded: [Loaded]) throws -> [ImagePanels] {
        var out: [ImagePanels] = []
        for item in loaded {
            let raw = item.maps[0]!
            let present = item.maps.compactMap { $0 }.filter { $0.shape == raw.shape }
            let pca = try FeaturePCA(fitting: present)
            let base = Report.fileStem(item.stem)
            func put(_ image: RGBImage, _ name: String, _ caption: String) throws -> Tile {
                let file = "\(base)_\(name).png"
                try image.write(to: dir.appendingPathComponent(file))
                return Tile(caption: caption, file: file)
            }
            let (th, tw) = Visuals.displaySize(height: raw.shape[0], width: raw.shape[1], target: 224)
            let input = try put(item.input.resized(width: tw, height: th), "input", "input: \(item.stem)")
            var methodRows: [(String, [Tile])?] = []
            for (k, m) in Report.methods.enumerated() {
                guard k < item.maps.count, let map = item.maps[k], map.shape == raw.shape else { methodRows.append(nil); continue }
                let norms = Visuals.norms(map)
                let lo = norms.scalars.min() ?? 0, hi = norms.scalars.max() ?? 1
                let k = min(Report.clusters, map.shape[0] * map.shape[1])  // a tiny grid has fewer tokens than clusters
                let km = try SphericalKMeans(map: map, k: k, seed: Report.clusterSeed)
                let sim = ClusterMaps.centreSimilarity(map)
                let simLo = sim.scalars.min() ?? 0
                methodRows.append(
                    (
                        m.label,
                        [
                            try put(pca.image(map), "\(m.key)_pca", "\(m.label): PCA (one basis per image)"),
                            try put(
                                Visuals.heatmap(norms, colormap: Colormap.inferno), "\(m.key)_norm",
                                String(format: "%@: token norm %.4g … %.4g (inferno, min–max per map)", m.label as NSString, lo, hi)),
                            try put(
                                ClusterMaps.clusterImage(labels: km.labels, k: k, height: map.shape[0], width: map.shape[1]),
                                "\(m.key)_kmeans", "\(m.label): k-means, k = \(k), seed \(Report.clusterSeed), cosine"),
                            try put(
                                ClusterMaps.centreSimilarityImage(map), "\(m.key)_centresim",
                                String(format: "%@: cosine to the centre token (red), %.2f … 1 (turbo, min–max)", m.label as NSString, simLo)),
                        ]
                    ))
            }
            var decomposition: [Tile] = []
            if let extras = run.stage1Extras, let f = item.maps.count > 2 ? item.maps[2] : nil {
                let (gURL, hURL) = extras(item.stem)
                let g = FileManager.default.fileExists(atPath: gURL.path) ? try Npy.read(gURL) : nil
                let h = FileManager.default.fileExists(atPath: hURL.path) ? try Npy.read(hURL) : nil
                if let g, g.shape == raw.shape {
                    let hMap = h.flatMap { $0.shape == raw.shape ? $0 : nil }
                    let gh = hMap.map { g + $0 } ?? g
                    let rest = raw - f - gh
                    let restNorm = Visuals.norms(rest).scalars.max() ?? 0, rawNorm = Visuals.norms(raw).scalars.max() ?? 1
                    decomposition.append(try put(pca.image(raw), "dec_raw", "raw ViT (PCA, the image's basis)"))
                    decomposition.append(try put(pca.image(f), "dec_f", "= F: stage-1 field (same basis)"))
                    decomposition.append(try put(try FeaturePCA(fitting: g).image(g), "dec_g", "+ G: shared artifact (own PCA)"))
                    decomposition.append(
                        try put(Visuals.heatmap(Visuals.norms(g), colormap: Colormap.inferno), "dec_gnorm", "G: token norm (inferno, min–max)"))
                    if let hMap {
                        decomposition.append(try put(try FeaturePCA(fitting: hMap).image(hMap), "dec_h", "+ h: residual (own PCA)"))
                        decomposition.append(
                            try put(Visuals.heatmap(Visuals.norms(hMap), colormap: Colormap.inferno), "dec_hnorm", "h: token norm (inferno, min–max)")
                        )
                        decomposition.append(try put(try FeaturePCA(fitting: gh).image(gh), "dec_gh", "G + h composited (own PCA), as DVT draws it"))
                    }
                    decomposition.append(
                        try put(
                            Visuals.heatmap(Visuals.norms(rest), colormap: Colormap.inferno), "dec_rest",
                            String(
                                format: "raw − (F + G%@): token norm, max %.4g (raw max %.4g)", (hMap == nil ? "" : " + h") as NSString, restNorm,
                                rawNorm)))
                }
            }
            out.append(ImagePanels(stem: item.stem, input: input, methodRows: methodRows, decomposition: decomposition))
        }
        return out
    }

    // MARK: The viewer

    struct ViewerSection { var dims: Int; var channels: Int; var energy: [Int: Double]; var skipped: [String]; var layers: [Int] }

    func writeViewer(_ loaded: [Loaded]) throws -> ViewerSection? {
        guard loaded.count >= 1 else { return nil }
        var methods: [ViewerData.Method] = []
        for (k, m) in Report.methods.enumerated() {
            var maps: [Int: [Tensor?]] = [run.layer: loaded.map { k < $0.maps.count ? $0.maps[k] : nil }]
            if k == 0 {
                for (layer, path) in run.extraLayers where layer != run.layer {
                    maps[layer] = try loaded.map { item in
                        let url = path(item.stem)
                        return FileManager.default.fileExists(atPath: url.path) ? try Npy.read(url) : nil
                    }
                }
            }
            methods.append(ViewerData.Method(key: m.key, label: m.label, maps: maps))
        }
        let data = try ViewerData(methods: methods, imageCount: loaded.count)
        var images: [(String, String)] = []
        for item in loaded {
            let file = "\(Report.fileStem(item.stem))_input.png"  // written by writePanels
            images.append((item.stem, file))
        }
        let script = try data.script(methods: methods, images: images, mainLayer: run.layer)
        try AtomicFile.write(Data(script.utf8), to: dir.appendingPathComponent("viewer_data.js"))
        return ViewerSection(
            dims: data.dims, channels: data.channels, energy: data.keptEnergy, skipped: data.skipped,
            layers: data.encoded.keys.sorted())
    }

    // MARK: The page

    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    func figure(_ t: Tile, cls: String = "tile") -> String {
        "<figure class=\"\(cls)\"><img src=\"\(esc(t.file))\" alt=\"\(esc(t.caption))\"><figcaption>\(esc(t.caption))</figcaption></figure>"
    }

    // Long on purpose: the page top to bottom, one block per section.
    func page(panels: [ImagePanels], viewer: ViewerSection?) -> String {
        var h = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>dvt report: \(esc(run.title))</title>
            <script>window.__dvtErrors = []; window.addEventListener("error", function (e) { window.__dvtErrors.push(String(e.message)); });</script>
            <style>
            body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
            h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
            .warn { background: #fff3cd; border: 1px solid #e0b000; padding: 0.8em 1em; border-radius: 4px; }
            table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
            th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
            figure { margin: 0.5em 0; } figcaption { color: #555; font-size: 0.85em; }
            img { max-width: 100%; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
            .charts { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
            .panels { display: grid; grid-template-columns: 150px repeat(4, 1fr); gap: 6px 10px; align-items: start; margin-bottom: 2em; }
            .panels .tile img, .strip .tile img { width: 100%; image-rendering: pixelated; display: block; }
            .panels .tile, .strip .tile { margin: 0; } .panels .rowlabel { font-weight: 600; padding-top: 2em; }
            .strip { display: flex; gap: 8px; flex-wrap: wrap; } .strip .tile { width: 150px; }
            \(ViewerScript.style)
            </style></head><body>
            <h1>dvt report</h1>
            <p class="sub">model <b>\(esc(run.model))</b>, block \(run.layer), input \(run.inputSize.map(String.init).joined(separator: "×")), seed \(run.seed)</p>

            """
        if let w = run.weights {
            h +=
                "<p class=\"sub\">weights <b>\(esc(URL(fileURLWithPath: w).lastPathComponent))</b> (\(esc(w)))"
                + (run.positionResampling.map { ", position embedding resampled \(esc($0))" } ?? "") + "</p>\n"
        }
        if let seed = run.randomInitSeed {
            h += "<p class=\"warn\"><b>Random weights.</b> \(esc(VisionTransformer.randomWeightsWarning(seed: seed)))</p>\n"
        }
        if !run.provenance.isEmpty {
            h += "<h2>Weights</h2>\n<table>\n"
            for (k, v) in run.provenance { h += "<tr><th>\(esc(k))</th><td>\(esc(v))</td></tr>\n" }
            h += "</table>\n"
        }

        // Metrics: the table, then one bar chart per column.
        h +=
            "<h2>Artifact metrics</h2>\n<p>Over the evaluation images, raw → SRT → DVT stage 1 → stage 2; lower is less position-dependent (docs/metrics.md). "
        h +=
            "The flip equivariance error compares the features of the mirrored image with the mirrored features: 0 when the features follow the content, large when a pattern stays tied to the patch position. \(esc(run.equivarianceNote))</p>\n"
        h +=
            "<table><tr><th>method</th><th>maps</th><th>grid</th><th>position-variance ratio</th><th>MIC<sub>eq</sub> channels vs position</th><th>MIC<sub>eq</sub> norm vs position</th><th>flip equivariance error</th></tr>\n"
        for r in rows {
            h += String(
                format:
                    "<tr><td>%@</td><td class=n>%d</td><td>%@</td><td class=n>%.4f</td><td class=n>%.4f</td><td class=n>%.4f</td><td class=n>%@</td></tr>\n",
                esc(r.label) as NSString, r.maps, r.grid.map(String.init).joined(separator: "×") as NSString,
                r.positionVarianceRatio, r.channelMIC, r.normMIC, (r.flipEquivariance.map { String(format: "%.4f", $0) } ?? "—") as NSString)
        }
        h += "</table>\n<div class=\"charts\">\n"
        let columns: [(String, (ArtifactMetrics.Row) -> Double?)] = [
            ("position-variance ratio", { Double($0.positionVarianceRatio) }), ("MIC_eq channels vs position", { Double($0.channelMIC) }),
            ("MIC_eq norm vs position", { Double($0.normMIC) }), ("flip equivariance error", { $0.flipEquivariance.map(Double.init) }),
        ]
        for (title, value) in columns where !rows.isEmpty {
            h +=
                "<figure>" + Charts.bars(rows.map { ($0.label, value($0)) }, title: title)
                + "<figcaption>\(esc(title)) per method</figcaption></figure>\n"
        }
        h += "</div>\n"

        if !run.layerStrength.isEmpty {
            let s = run.layerStrength.sorted { $0.layer < $1.layer }
            let strongest = s.max { $0.flipEquivariance < $1.flipEquivariance }!
            h += "<h2>Artifact strength per block</h2>\n<p>Raw features of every block on the evaluation images. The denoised block is \(run.layer); "
            h +=
                "the block with the largest flip equivariance error is \(strongest.layer) (\(String(format: "%.3f", strongest.flipEquivariance))).</p>\n<div class=\"charts\">\n"
            let pvr = Charts.Series(
                name: "raw", color: Charts.palette[0], points: s.map { (Double($0.layer), Double($0.positionVarianceRatio)) }, dots: true)
            let eq = Charts.Series(
                name: "raw", color: Charts.palette[3], points: s.map { (Double($0.layer), Double($0.flipEquivariance)) }, dots: true)
            let mark = { (series: Charts.Series) in
                Charts.Series(name: "denoised block", color: "#000", points: series.points.filter { Int($0.x) == run.layer }, dots: true)
            }
            for (series, what, unit) in [(pvr, "position-variance ratio", "ratio"), (eq, "flip equivariance error", "error")] {
                h +=
                    "<figure>"
                    + Charts.line(
                        [series, mark(series)], title: "\(what) per block", xLabel: "block", yLabel: unit, logY: false,
                        integerX: true, fromZero: true)
                h += "<figcaption>\(what) of the raw features per block</figcaption></figure>\n"
            }
            h += "</div>\n"
        }

        // The viewer.
        h += "<h2>Token similarity</h2>\n"
        if let v = viewer {
            let stored =
                v.dims == v.channels
                ? "all \(v.channels) channels"
                : "a projection onto the top \(v.dims) of \(v.channels) directions of each block's unit tokens (keeps "
                    + v.layers.map { String(format: "%.1f%% at block %d", 100 * (v.energy[$0] ?? 1), $0) }.joined(separator: ", ")
                    + " of the energy; cosines are those of the projection)"
            h +=
                "<p>Hover over a token in any panel to preview it, click to select it; after a click the arrow keys move the selection. Each panel shows the cosine similarity of the selected token's feature to every token of its row's image, in the same method: "
            h +=
                "row A and row B can hold different images, so a token picked in A shows its matches in B. One colour scale (turbo) for every panel. Features are stored as fp16 of \(esc(stored)).</p>\n"
            if !v.skipped.isEmpty { h += "<p>Left out of the viewer: \(esc(v.skipped.joined(separator: "; "))).</p>\n" }
            h += "<div id=\"viewer\" tabindex=\"0\"></div>\n<script src=\"viewer_data.js\"></script>\n<script>\n\(ViewerScript.source)</script>\n"
        } else {
            h += "<p>No raw feature maps of the evaluation images: nothing to show.</p>\n"
        }

        // DVT's panels.
        h += "<h2>Features</h2>\n<p>DVT's panels per image (Jiawei-Yang/Denoising-ViT, dvt/utils/visualization/visualization_tools.py): "
        h +=
            "PCA to RGB (one basis per image, fitted on all its maps, so colours compare), the token norm, k-means clusters (k = \(Report.clusters), one seed, cosine distance, the same for every method; colours by cluster size) "
        h += "and the cosine similarity of the centre token. Each picture is at token resolution.</p>\n"
        for p in panels {
            h += "<h3>\(esc(p.stem))</h3>\n<div class=\"panels\">\n"
            h +=
                figure(p.input)
                + "<div class=\"rowlabel\">PCA</div><div class=\"rowlabel\">token norm</div><div class=\"rowlabel\">k-means clusters</div><div class=\"rowlabel\">centre-token similarity</div>\n"
            for (k, row) in p.methodRows.enumerated() {
                guard let row else {
                    h +=
                        "<div class=\"rowlabel\">\(esc(Report.methods[k].label))</div><div style=\"grid-column: span 4; color: #777\">not computed for this image</div>\n"
                    continue
                }
                h += "<div class=\"rowlabel\">\(esc(row.label))</div>" + row.tiles.map { figure($0) }.joined() + "\n"
            }
            h += "</div>\n"
            if !p.decomposition.isEmpty {
                h +=
                    "<p><b>Decomposition raw = F + G + h</b> (stage 1, DVT's ViT(x) = F(x) + G(pos) + h(x, pos)):</p>\n<div class=\"strip\">"
                    + p.decomposition.map { figure($0) }.joined() + "</div>\n"
            }
        }
        if panels.contains(where: { $0.decomposition.isEmpty }) {
            h +=
                "<p>No decomposition strip for some images: stage 1's G and h maps were not saved (runs before the report saved them, or stage 1 run apart from <code>dvt run</code> without <code>stage1.save_extras</code>).</p>\n"
        }

        h += Downstream.html(root: run.root, reportDir: dir)
        h += "<h2>Training</h2>\n<div class=\"charts\">\n" + trainingCharts() + "</div>\n"
        h += "<h2>Timings</h2>\n<table><tr><th>step</th><th>time</th><th>note</th></tr>\n"
        for t in run.timings {
            h += "<tr><td>\(esc(t.step))</td><td class=n>\(Progress.format(seconds: t.seconds))</td><td>\(esc(t.note))</td></tr>\n"
        }
        h += "</table>\n<h2>Configuration</h2>\n<pre>\(esc(run.configYAML))</pre>\n</body></html>\n"
        return h
    }

    /// Stage 2's loss curve (metrics.jsonl) and stage 1's final loss per image (its manifest), as SVG.
    func trainingCharts() -> String {
        var h = ""
        if FileManager.default.fileExists(atPath: run.stage2Metrics.path), let hist = try? LossCurve.read(metrics: run.stage2Metrics) {
            var series = [
                Charts.Series(name: "train", color: Charts.palette[0], points: hist.train.map { (Double($0.step), $0.loss) }),
                Charts.Series(name: "val", color: Charts.palette[1], points: hist.validation.map { (Double($0.step), $0.loss) }, dots: true),
            ]
            if let id = hist.identity, let last = (hist.train + hist.validation).map(\.step).max(),
                let first = (hist.train + hist.validation).map(\.step).min()
            {
                series.append(Charts.Series(name: "identity", color: "#777", points: [(Double(first), id), (Double(last), id)], dashed: true))
            }
            h += "<figure>" + Charts.line(series, title: "stage 2 loss", xLabel: "step", yLabel: "loss")
            h +=
                "<figcaption>Stage 2: training loss, validation loss, and the identity baseline (raw features as the prediction)</figcaption></figure>\n"
        }
        let manifest = run.root.appendingPathComponent("stage1_manifest.jsonl")
        if let text = try? String(contentsOf: manifest, encoding: .utf8) {
            var points: [(x: Double, y: Double)] = []
            for line in text.split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let loss = obj["final_loss"] as? Double
                else { continue }
                points.append((Double(points.count + 1), loss))
            }
            if !points.isEmpty {
                h +=
                    "<figure>"
                    + Charts.line(
                        [Charts.Series(name: "final loss", color: Charts.palette[2], points: points, dots: true)],
                        title: "stage 1 final loss per image", xLabel: "image (order processed)", yLabel: "loss", integerX: true)
                h += "<figcaption>Stage 1: final loss of each image's fit</figcaption></figure>\n"
            }
        }
        return h
    }
}
