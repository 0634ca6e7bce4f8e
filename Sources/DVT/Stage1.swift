import Foundation
import NN
import Settings
import TensorCore
import Training

// DVT stage 1 as a training task: settings, per-step batch sampling, the phase switch and the
// per-image outputs. The loop itself (optimiser, schedule, checkpoints) is the Trainer's.
// Letters: V views (the last one the whole image), h × w token grid, C channels, B batch, T = V·h·w tokens.

/// Stage 1's settings: the typed `stage1.*` section, where each key is declared once with its
/// default (DVT's `denoise_an_image` arguments and its `NeuralFeatureField`), range, doc line and
/// DVT name (Settings.swift).
public typealias Stage1Settings = DVTSettings.Stage1

extension DVTSettings.Stage1 {
    /// The warmup actually used: null = numIters / 10 (DVT's 2500 of 25000, and the PyTorch
    /// port's default).
    public var effectiveWarmupIters: Int { warmupIters ?? numIters / 10 }

    /// The hash-grid layout these settings describe.
    public var layout: HashGridLayout {
        HashGridLayout(
            levels: nLevels, featuresPerLevel: nFeaturesPerLevel, log2TableSize: log2HashmapSize,
            baseResolution: baseResolution, finestResolution: maxResolution)
    }

    /// Step from which the second phase runs: DVT switches when `step > int(f · num_iters)`.
    public var residualPhaseStart: Int { Int(freezeSharedArtifactsAfter * Double(numIters)) + 1 }
}

/// What stage 1 produces for one image.
public struct Stage1Output {
    /// (h, w, C): F on the whole-image token grid, the denoised features.
    public var denoised: Tensor
    /// (h, w, C): the raw features of the whole image (the last view).
    public var raw: Tensor
    /// (h, w, C): the learnt shared artifact map G.
    public var sharedArtifacts: Tensor
    /// (h, w, C): h(raw) of the whole image, when the residual predictor was on.
    public var residual: Tensor?

    public init(denoised: Tensor, raw: Tensor, sharedArtifacts: Tensor, residual: Tensor? = nil) {
        self.denoised = denoised
        self.raw = raw
        self.sharedArtifacts = sharedArtifacts
        self.residual = residual
    }
}

/// DVT stage 1 on one image, a task of the one Trainer (its `TrainingTask` conformance is in
/// Stage1Fit.swift, beside the fit): it owns F, G and h, samples `pixelBsz` tokens per step from all
/// views and computes `SingleImageDenoiser.loss`.
///
/// Parameter keys: `field.` + `NeuralFeatureField` keys (`field.grid.params` is row-sparse, row
/// width = features per level), `denoiser.` + `SingleImageDenoiser` keys.
///
/// Randomness: `seed` initialises the models (field table, field MLP, then G, then h, in that
/// order; `shared_artifacts_prior` then overwrites G); the token batches come from the generator
/// the trainer passes to `loss`.
public final class Stage1Task {
    public let settings: Stage1Settings
    /// The model seed the task was made with (the fit's sampler seed derives from it).
    public let seed: UInt64
    public let field: NeuralFeatureField
    public let denoiser: SingleImageDenoiser
    public let views: Int
    public let height: Int
    public let width: Int
    public let dim: Int
    /// (T, C) in `settings.viewFeaturesDtype`
    let flatRaw: FeatureRows
    /// (h, w, C): the whole image's raw features (the last view) in fp32, the `raw` output.
    let lastView: Tensor
    /// (T, 2), global (x, y) in [0, 1]
    let flatCoords: Tensor
    /// (h·w, 2): each token's (x, y) in [−1, 1] on its view's grid (the same for every view).
    let viewGrid: Tensor

    /// Operand precision of the fit's products (F's and h's MLPs), config key `precision`. DVT's
    /// stage 1 has the same switch: `--dtype bfloat16` runs the fit's forward under
    /// torch.autocast (main_img_denoising.py:78, parsed at :173 and :257; fp32 by default), while
    /// its hash table stays fp32 (neural_feature_field.py:27). Here bf16 rounds the operands of
    /// the MLP products only; the table, G, the losses and Adam stay fp32, as under autocast.
    public var precision: Precision = .fp32

    /// Optional held-out scoring (e.g. against a planted truth), run by `validate` every
    /// `valFreq` steps of the trainer; receives the current outputs.
    public var validation: ((Stage1Output) -> [String: Double])?

    public static let tableParameter = "field." + NeuralFeatureField.tableKey
    public static let artifactParameter = "denoiser." + SingleImageDenoiser.sharedArtifactsKey

    /// - Parameters:
    ///   - raw: (V, h, w, C) raw features of every view; the last view is the whole image.
    ///   - coords: (V, h, w, 2) each token's (x, y) in [0, 1] of the whole image.
    ///   The task reads `raw`'s storage without copying it (fp32) or keeps a bf16 or int8
    ///   copy (`viewFeaturesDtype`): `raw` must not change during the fit.
    public convenience init(raw: Tensor, coords: Tensor, settings: Stage1Settings, seed: UInt64) throws {
        guard raw.rank == 4, raw.shape[0] >= 1 else { throw Stage1Error("stage1: raw features must be (V, h, w, C), got \(raw.shape)") }
        let (v, h, w) = (raw.shape[0], raw.shape[1], raw.shape[2])
        let last = withNoGrad { raw.slice(axis: 0, (v - 1)..<v) }.reshape([h, w, raw.shape[3]])  // (h, w, C)
        try self.init(
            raw: FeatureRows(raw.detach(), element: settings.viewFeaturesDtype), lastView: last,
            coords: coords, settings: settings, seed: seed)
    }

    /// - Parameters:
    ///   - raw: (V·h·w, C) raw features of every view, view-major; the last view is the whole image.
    ///   - lastView: (h, w, C) the whole image's raw features in fp32 (the `raw` output).
    ///   - coords: (V, h, w, 2) each token's (x, y) in [0, 1] of the whole image.
    public init(raw: FeatureRows, lastView: Tensor, coords: Tensor, settings: Stage1Settings, seed: UInt64) throws {
        try settings.validate()
        guard coords.rank == 4, coords.shape[0] >= 1, coords.shape[3] == 2 else {
            throw Stage1Error("stage1: coords must be (V, h, w, 2), got \(coords.shape)")
        }
        let (v, h, w, c) = (coords.shape[0], coords.shape[1], coords.shape[2], raw.cols)
        guard raw.rows == v * h * w else {
            throw Stage1Error("stage1: raw features have \(raw.rows) rows of \(c), but coords \(coords.shape) need V·h·w = \(v * h * w)")
        }
        guard lastView.shape == [h, w, c] else {
            throw Stage1Error("stage1: the whole image's features must be (h, w, C) = \([h, w, c]), got \(lastView.shape)")
        }
        guard c >= 4 else { throw Stage1Error("stage1: feature dimension must be >= 4, got \(c) (raw (\(raw.rows), \(c)))") }
        self.settings = settings
        self.seed = seed
        views = v; height = h; width = w; dim = c
        flatRaw = raw  // (T, C)
        self.lastView = lastView
        flatCoords = coords.copy().reshape([v * h * w, 2])  // (T, 2)
        viewGrid = Stage1Grid.coordinates(height: h, width: w, lo: -1, hi: 1)  // (h·w, 2)
        var rng = RandomGenerator(seed: seed)
        field = NeuralFeatureField(dim: c, layout: settings.layout, rng: &rng)
        denoiser = SingleImageDenoiser(height: h, width: w, dim: c, rng: &rng)
        // The prior replaces G's random draw after it is made, so h's init is the same with and without one.
        if let path = settings.sharedArtifactsPrior {
            denoiser.sharedArtifacts.assign(try Stage1.sharedArtifactsPrior(URL(fileURLWithPath: path), height: h, width: w, dim: c))
        }
    }

    public var parameters: [(String, Tensor)] {
        prefixed("field", field.namedParameters()) + prefixed("denoiser", denoiser.namedParameters())
    }

    /// The hash table, unless `hashTableAdam` is `.dense` (then every parameter is dense).
    public var rowSparseParameters: [String: Int] {
        settings.hashTableAdam == .dense ? [:] : [Self.tableParameter: settings.nFeaturesPerLevel]
    }

    /// DVT's phase switch: before step `step`, if `step > int(freeze_shared_artifacts_after · total)`,
    /// freeze G and switch h on. Depends on `step` only, so a resumed run lands in the right phase.
    public func willStep(_ step: Int, total: Int) {
        if step > Int(settings.freezeSharedArtifactsAfter * Double(total)) && !isResidualPhase {
            denoiser.startResidualPhase(enableResidualPredictor: settings.enableResidualPredictor)
        }
    }

    /// Whether the second phase (G frozen) has started.
    public var isResidualPhase: Bool { !denoiser.sharedArtifacts.requiresGrad }

    /// `settings.coordJitter` as Float.
    var jitter: Float { Float(settings.coordJitter) }

    /// Folds a jittered coordinate back into [0, 1] by reflection at the borders (keeps the
    /// sample density uniform there, where clamping would pile samples onto the edge).
    @inline(__always) static func reflect(_ x: Float) -> Float {
        x < 0 ? Swift.min(-x, 1) : (x > 1 ? Swift.max(2 - x, 0) : x)
    }

    /// Per view: the spacing of adjacent tokens in global coordinates (x, y), the scale of
    /// `coordJitter`.
    lazy var viewSpacing: [(Float, Float)] = {
        let c = flatCoords, per = height * width
        return (0..<views).map { v in
            let base = v * per
            let dx = width > 1 ? Swift.abs(c[flat: 2 * (base + 1)] - c[flat: 2 * base]) : 0
            let dy = height > 1 ? Swift.abs(c[flat: 2 * (base + width) + 1] - c[flat: 2 * base + 1]) : 0
            return (dx, dy)
        }
    }()

    /// Draws `pixelBsz` token indices uniformly from all V·h·w tokens, with replacement
    /// (DVT: `np.random.randint(0, T, pixel_bsz)`), and gathers their raw features, global
    /// coordinates and view coordinates. With `coordJitter` j > 0 each global coordinate is
    /// moved by U(−j, j) times its view's token spacing (then reflected into [0, 1]); the view
    /// coordinates, where G is sampled, stay on the grid.
    public func sampleBatch(rng: inout RandomGenerator) -> (raw: Tensor, globalCoords: Tensor, viewCoords: Tensor) {
        let b = settings.pixelBsz, total = views * height * width, perView = height * width
        // All indices first, then the jitter draws: the tokens of a batch do not depend on coordJitter.
        let tokens = (0..<b).map { _ in rng.randint(total) }
        let raw = flatRaw.gatherRows(tokens)  // (B, C)
        let gc = flatCoords.gatherRows(tokens)  // (B, 2)
        let vc = viewGrid.gatherRows(tokens.map { $0 % perView })  // (B, 2)
        if jitter > 0 {
            for (i, t) in tokens.enumerated() {
                let (dx, dy) = viewSpacing[t / perView]
                gc[flat: 2 * i] = Self.reflect(gc[flat: 2 * i] + dx * jitter * (2 * rng.uniform() - 1))
                gc[flat: 2 * i + 1] = Self.reflect(gc[flat: 2 * i + 1] + dy * jitter * (2 * rng.uniform() - 1))
            }
        }
        return (raw, gc, vc)
    }

    /// One step's loss on a fresh batch.
    public func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        let batch = sampleBatch(rng: &rng)
        let terms = precision.run {  // ops record it, so the backward products use it too
            denoiser.loss(raw: batch.raw, globalCoords: batch.globalCoords, viewCoords: batch.viewCoords, field: field)
        }
        return (terms.total, terms.metrics)
    }

    /// `validation` applied to the current outputs ([:] without one).
    public func validate(step: Int) throws -> [String: Double] {
        guard let validation else { return [:] }
        return validation(output())
    }

    /// The per-image results: F on the whole-image grid, the last view's raw features, G, and
    /// h(raw) of the whole image when h is on.
    public func output() -> Stage1Output {
        precision.run { outputInPrecision() }  // DVT evaluates its outputs under the same autocast (main_img_denoising.py:299-331)
    }

    private func outputInPrecision() -> Stage1Output {
        let perView = height * width
        let last = lastView.copy()  // (h, w, C)
        let denoised = field.evaluateGrid(height: height, width: width)  // (h, w, C)
        var residual: Tensor? = nil
        if denoiser.residualOn {
            residual = withNoGrad { denoiser.residualPredictor(last.reshape([perView, dim])) }.reshape([height, width, dim])
        }
        return Stage1Output(
            denoised: denoised, raw: last, sharedArtifacts: denoiser.sharedArtifacts.detach().copy(),
            residual: residual)
    }
}
