import DVT
import Formats
import Foundation
import Report
import Settings
import TensorCore
import Vision

// The report's own measurements on the evaluation images. Letters: B = 2 (an image and its
// mirror), Gh × Gw grid, C channels.

/// Raw features of every block of each evaluation image and of its left-right mirror, giving
/// (1) the artifact strength per block (position-variance ratio, flip equivariance error),
/// (2) the raw maps of a few blocks for the viewer's layer switch
///     (`report_layers/block_NN/<model>/<rel>.npy`), and
/// (3) the flip equivariance error of every method at the denoised block. For stage 1 that is a
///     second fit per image, on the mirrored image's views (same seed, same settings), against the
///     mirrored F of the run's own fit; so its error also holds the fit's run-to-run variation.
struct ReportFeatures {
    let config: ResolvedConfig
    let model: VisionTransformer
    let paths: RunPaths
    let layer: Int
    let denoiser: Denoiser
    let srt: SRT?
    /// Stage 1's job, for the mirrored fits (nil: stage 1 is left out of (3)).
    let stage1: Stage1Job?

    /// Blocks the viewer offers: every quarter of the depth (blocks 2, 5, 8, 11 of 12) and the
    /// denoised block.
    static func viewerLayers(depth: Int, layer: Int) -> [Int] {
        let step = max(1, depth / 4)
        return Array(Set(Array(Swift.stride(from: step - 1, to: depth, by: step)) + [layer])).sorted()
    }

    static func layerTree(_ block: Int) -> String { String(format: "report_layers/block_%02d", block) }

    struct Outcome {
        var strength: [Report.LayerStrength]
        /// Method label → flip equivariance error.
        var equivariance: [String: Float]
        var images: Int
        var viewerLayers: [Int]
    }

    func run(items: [ImageItem]) throws -> Outcome {
        let depth = model.config.depth
        let stride = InputGeometry.stride(config.settings.run.strideSize, patchSize: model.config.patchSize)
        let (h, w) = InputGeometry.inputSize(config.settings.run.inputSize, stride: stride)
        let shown = Set(ReportFeatures.viewerLayers(depth: depth, layer: layer))
        let flip = ArtifactMetrics.flippedWidth
        var maps = [[Tensor]](repeating: [], count: depth)
        var pairs = [[(ofTransformed: Tensor, transformedFeatures: Tensor)]](repeating: [], count: depth)
        var stage2: [(ofTransformed: Tensor, transformedFeatures: Tensor)] = []
        var srtPairs: [(ofTransformed: Tensor, transformedFeatures: Tensor)] = []
        var stage1Pairs: [(ofTransformed: Tensor, transformedFeatures: Tensor)] = []
        var measured = 0
        // Images that failed in stage 1 (no raw map) are left out, as every later step does.
        for item in items where FileManager.default.fileExists(atPath: paths.raw(item.relativeStem).path) {
            measured += 1
            let x = try model.preprocess(item.url, height: h, width: w)  // (3, H, W)
            let mirrored = x.flipped(axis: -1)  // (3, H, W): the one flip op, along W
            let batch = Tensor.concat([x.reshape([1, 3, h, w]), mirrored.reshape([1, 3, h, w])], axis: 0)  // (B, 3, H, W)
            let features = model.features(batch, layers: Array(0..<depth), norm: true, stride: stride)
            for block in 0..<depth {
                let p = features[block]!.patch  // (B, Gh, Gw, C)
                let shape = Array(p.shape.dropFirst())
                let a = p.slice(axis: 0, 0..<1).reshape(shape), b = p.slice(axis: 0, 1..<2).reshape(shape)  // (Gh, Gw, C)
                maps[block].append(a)
                pairs[block].append((b, flip(a)))
                if block == layer {
                    withNoGrad { stage2.append((denoiser.denoise(b), flip(denoiser.denoise(a)))) }
                }
                if shown.contains(block) && block != layer {
                    let url = paths.extra(ReportFeatures.layerTree(block), item.relativeStem)
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Npy.write(a, to: url)
                }
            }
            let denoisedFile = paths.denoised(item.relativeStem)
            if let stage1, FileManager.default.fileExists(atPath: denoisedFile.path) {
                let seed = Stage1Job.imageSeed(config.settings.run.seed, item.relativeStem)
                let plan = stage1.plan(base: try stage1.base(item.url).flipped(axis: -1), seed: seed)
                let raw = stage1.features(of: plan)
                let fit = try Stage1.fit(
                    rows: raw.rows, lastView: raw.lastView, coords: plan.coords, settings: stage1.settings, seed: seed,
                    label: "stage1 mirrored \(item.relativeStem)", quiet: true,
                    precision: config.settings.run.precision)
                stage1Pairs.append((fit.output.denoised, flip(try Npy.read(denoisedFile))))
            }
            // SRT of the image itself is the run's own file; only the mirror is new.
            let srtFile = paths.srt(item.relativeStem)
            if let srt, FileManager.default.fileExists(atPath: srtFile.path) {
                let fast = srt.options.aggregate == .mean
                srtPairs.append((try srt.run(mirrored, fast: fast).output, flip(try Npy.read(srtFile))))
            }
        }
        var strength: [Report.LayerStrength] = []
        for block in 0..<depth where maps[block].count >= 1 {
            strength.append(
                Report.LayerStrength(
                    layer: block,
                    positionVarianceRatio: maps[block].count >= 2 ? try ArtifactMetrics.positionVarianceRatio(maps[block]) : .nan,
                    flipEquivariance: try ArtifactMetrics.equivarianceError(pairs[block])))
        }
        var eq: [String: Float] = [:]
        if !pairs[layer].isEmpty { eq["raw ViT"] = try ArtifactMetrics.equivarianceError(pairs[layer]) }
        if !stage2.isEmpty { eq["DVT stage 2"] = try ArtifactMetrics.equivarianceError(stage2) }
        if !srtPairs.isEmpty { eq["SRT"] = try ArtifactMetrics.equivarianceError(srtPairs) }
        if !stage1Pairs.isEmpty { eq["DVT stage 1"] = try ArtifactMetrics.equivarianceError(stage1Pairs) }
        return Outcome(strength: strength, equivariance: eq, images: measured, viewerLayers: shown.sorted())
    }
}
