import Foundation
import NN
import TensorCore
import Training

// DVT stage 1 as a training task: settings, per-step batch sampling, the phase switch and the
// per-image outputs. The loop itself (optimiser, schedule, checkpoints) is the Trainer's.
// Letters: V views (the last one the whole image), h × w token grid, C channels, B batch, T = V·h·w tokens.

/// Stage-1 settings under DVT's names (`denoise_an_image` arguments and its
/// `NeuralFeatureField`), Codable with exactly those snake_case keys, plus our `hash_table_adam`
/// and `coord_jitter`.
/// Missing keys take the defaults below, which are DVT's.
public struct Stage1Settings: Codable, Sendable, Equatable {
    /// Optimisation steps per image (DVT `--num_iters` 25000).
    public var numIters = 25_000
    /// Linear-warmup steps; nil = numIters / 10 (DVT's 2500 of 25000, and the PyTorch port's default).
    public var warmupIters: Int? = nil
    /// Peak learning rate (DVT 0.01).
    public var lr = 0.01
    /// Floor of the cosine decay (DVT 0.001).
    public var minLR = 0.001
    /// Adam's L2 weight decay (DVT 1e-5; torch Adam adds wd·p to the gradient).
    public var weightDecay = 1e-5
    /// Factor the loss is multiplied by before the backward pass, never divided out again:
    /// DVT's `torch.amp.GradScaler("cuda", 2**10)` followed by `grad_scaler.scale(loss).backward()`
    /// and a plain `optimizer.step()` (main_img_denoising.py lines 55 and 88-89; the scaler's
    /// `unscale_`/`step` are never called). Adam's update is invariant to the gradient's scale
    /// except for its two additive terms, so the official run's effective L2 decay is
    /// weight_decay / 1024 and its ε is 1e-15 / 1024. 1 = the literal optimiser.
    public var lossScale = 1024.0
    /// Tokens sampled (with replacement) per step (DVT 2048).
    public var pixelBsz = 2048
    /// Fraction of numIters after which G freezes and h switches on (DVT 0.5).
    public var freezeSharedArtifactsAfter = 0.5
    /// Hash-grid levels (DVT 16).
    public var nLevels = 16
    /// Features per level (DVT's tiny-cuda-nn config: 8).
    public var nFeaturesPerLevel = 8
    /// log2 of the per-level table size (DVT 20).
    public var log2HashmapSize = 20
    /// Coarsest grid resolution (DVT 16).
    public var baseResolution = 16
    /// Finest grid resolution (DVT 1024; growth factor derived from it).
    public var maxResolution = 1024
    /// Whether the second phase trains the residual predictor h (DVT: yes).
    public var enableResidualPredictor = true
    /// Coordinate jitter for F, as a fraction of the sampled token's own view's token spacing
    /// (not a DVT option; 0 = DVT). A token summarises a patch, not a point, so each step feeds
    /// F a uniformly random point within ±j spacings of the token centre (j = 0.5: the patch
    /// footprint of non-overlapping patches). Without it the fine hash levels (finest resolution
    /// ≫ token grid) give every sampled token its own vertices and F memorises each token, its
    /// artifact and noise included; evaluated on the whole image's own token grid, it then
    /// reproduces part of that view's artifacts.
    public var coordJitter = 0.0
    /// How Adam updates the hash table (not a DVT option). Default `deferred`: at the official
    /// loss scale it equals dense Adam (DVT's) on the planted benchmark to 1e-4 in both cosines
    /// (docs/stage1.md) at O(touched rows) per step. See `HashTableAdam`.
    public var hashTableAdam = HashTableAdam.deferred
    /// Weight decay of the shared artifact map G alone (not a DVT option; nil = `weightDecay`, as
    /// DVT). DVT's L2 decay pulls G toward zero against its small data gradient (each entry sees
    /// a few tokens per step), so F takes up the rest of the artifact; 0 lets G hold all of it.
    /// Measured on the planted file without jitter: 0.996 / 0.9999 instead of 0.960 / 0.980
    /// (docs/stage1.md).
    public var sharedArtifactsWeightDecay: Double? = nil
    /// How the view features are held for the fit (not a DVT option; fp32 = DVT). bf16 halves
    /// the recipe's largest allocation (the official 769 ViT-B/14 518² views: 3.0 → 1.5 GiB),
    /// int8 quarters it (0.75 GiB; `FeatureRows` has the rule); every sampled token is then its
    /// bf16 rounding or int8 quantisation. The whole image's raw output stays fp32.
    public var viewFeaturesDtype = ViewFeaturesDtype.fp32
    public typealias ViewFeaturesDtype = FeatureRows.Element

    /// The hash table's optimiser. DVT optimises it with torch's dense `Adam`: every step every
    /// row's moments decay and rows keep moving along their momentum even when no sample touched
    /// them, at O(table) cost per step.
    ///
    /// Measured on the planted benchmark at the official loss scale (seed-0 file, 8 levels, 2^16,
    /// finest 256, 3000 steps, no jitter; denoised / artifact centred cosine): dense 0.9955 /
    /// 0.9996, deferred 0.9955 / 0.9996 (final logged loss 0.00609 vs 0.00614), the PyTorch
    /// reference 0.9954 / 0.9995 (docs/stage1.md). With the literal (unscaled) decay deferred fell
    /// behind dense (0.949 vs 0.960): the difference is the decay of idle rows, which the
    /// official scaling makes negligible. Cost: dense adds O(table) per step, +47% with DVT's 16
    /// levels of 2^20 at C 768 (173 vs 118 ms/step).
    public enum HashTableAdam: String, Codable, Sendable, CaseIterable {
        /// Dense Adam's momentum, computed for touched rows only: idle steps are caught up in closed
        /// form when a row is next touched (`Adam.RowSparseMode.deferred`). Default. It drops only
        /// the weight-decay gradient on idle steps; dense Adam normalises that tiny gradient into
        /// real steps on long-idle rows, which mattered with the literal decay and not at the
        /// official loss scale (decay / 1024; numbers above).
        case deferred
        /// tiny-cuda-nn's Adam: untouched rows do not move at all and keep per-row step counts.
        /// Fine rows are touched on a fraction q of steps and then advance ~q·lr per step instead
        /// of dense Adam's ~√q·lr plus momentum, so the fine levels learn markedly slower.
        case lazy
        /// Literal dense Adam over the whole table, as DVT (O(table) per step).
        case dense
    }

    public init() {}

    /// The warmup actually used.
    public var effectiveWarmupIters: Int { warmupIters ?? numIters / 10 }

    /// The hash-grid layout these settings describe.
    public var layout: HashGridLayout {
        HashGridLayout(
            levels: nLevels, featuresPerLevel: nFeaturesPerLevel, log2TableSize: log2HashmapSize,
            baseResolution: baseResolution, finestResolution: maxResolution)
    }

    /// Step from which the second phase runs: DVT switches when `step > int(f · num_iters)`.
    public var residualPhaseStart: Int { Int(freezeSharedArtifactsAfter * Double(numIters)) + 1 }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case numIters = "num_iters", warmupIters = "warmup_iters", lr, minLR = "min_lr", weightDecay = "weight_decay"
        case lossScale = "loss_scale"
        case pixelBsz = "pixel_bsz", freezeSharedArtifactsAfter = "freeze_shared_artifacts_after"
        case nLevels = "n_levels", nFeaturesPerLevel = "n_features_per_level", log2HashmapSize = "log2_hashmap_size"
        case baseResolution = "base_resolution", maxResolution = "max_resolution"
        case enableResidualPredictor = "enable_residual_predictor"
        case hashTableAdam = "hash_table_adam"
        case coordJitter = "coord_jitter"
        case sharedArtifactsWeightDecay = "shared_artifacts_weight_decay"
        case viewFeaturesDtype = "view_features_dtype"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = Stage1Settings()
        s.numIters = try c.decodeIfPresent(Int.self, forKey: .numIters) ?? s.numIters
        s.warmupIters = try c.decodeIfPresent(Int.self, forKey: .warmupIters)
        s.lr = try c.decodeIfPresent(Double.self, forKey: .lr) ?? s.lr
        s.minLR = try c.decodeIfPresent(Double.self, forKey: .minLR) ?? s.minLR
        s.weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? s.weightDecay
        s.lossScale = try c.decodeIfPresent(Double.self, forKey: .lossScale) ?? s.lossScale
        s.pixelBsz = try c.decodeIfPresent(Int.self, forKey: .pixelBsz) ?? s.pixelBsz
        s.freezeSharedArtifactsAfter = try c.decodeIfPresent(Double.self, forKey: .freezeSharedArtifactsAfter) ?? s.freezeSharedArtifactsAfter
        s.nLevels = try c.decodeIfPresent(Int.self, forKey: .nLevels) ?? s.nLevels
        s.nFeaturesPerLevel = try c.decodeIfPresent(Int.self, forKey: .nFeaturesPerLevel) ?? s.nFeaturesPerLevel
        s.log2HashmapSize = try c.decodeIfPresent(Int.self, forKey: .log2HashmapSize) ?? s.log2HashmapSize
        s.baseResolution = try c.decodeIfPresent(Int.self, forKey: .baseResolution) ?? s.baseResolution
        s.maxResolution = try c.decodeIfPresent(Int.self, forKey: .maxResolution) ?? s.maxResolution
        s.enableResidualPredictor = try c.decodeIfPresent(Bool.self, forKey: .enableResidualPredictor) ?? s.enableResidualPredictor
        s.hashTableAdam = try c.decodeIfPresent(HashTableAdam.self, forKey: .hashTableAdam) ?? s.hashTableAdam
        s.coordJitter = try c.decodeIfPresent(Double.self, forKey: .coordJitter) ?? s.coordJitter
        s.sharedArtifactsWeightDecay = try c.decodeIfPresent(Double.self, forKey: .sharedArtifactsWeightDecay)
        s.viewFeaturesDtype = try c.decodeIfPresent(ViewFeaturesDtype.self, forKey: .viewFeaturesDtype) ?? s.viewFeaturesDtype
        self = s
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(numIters, forKey: .numIters)
        try c.encodeIfPresent(warmupIters, forKey: .warmupIters)
        try c.encode(lr, forKey: .lr)
        try c.encode(minLR, forKey: .minLR)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(lossScale, forKey: .lossScale)
        try c.encode(pixelBsz, forKey: .pixelBsz)
        try c.encode(freezeSharedArtifactsAfter, forKey: .freezeSharedArtifactsAfter)
        try c.encode(nLevels, forKey: .nLevels)
        try c.encode(nFeaturesPerLevel, forKey: .nFeaturesPerLevel)
        try c.encode(log2HashmapSize, forKey: .log2HashmapSize)
        try c.encode(baseResolution, forKey: .baseResolution)
        try c.encode(maxResolution, forKey: .maxResolution)
        try c.encode(enableResidualPredictor, forKey: .enableResidualPredictor)
        try c.encode(hashTableAdam, forKey: .hashTableAdam)
        try c.encode(coordJitter, forKey: .coordJitter)
        try c.encodeIfPresent(sharedArtifactsWeightDecay, forKey: .sharedArtifactsWeightDecay)
        if viewFeaturesDtype != .fp32 { try c.encode(viewFeaturesDtype, forKey: .viewFeaturesDtype) }  // fp32 encodes as before the key
    }

    /// Checks ranges, naming the offending key.
    public func validate() throws {
        func fail(_ key: CodingKeys, _ why: String) -> Stage1Error { Stage1Error("stage1 setting \(key.rawValue): \(why)") }
        if numIters < 1 { throw fail(.numIters, "must be >= 1, got \(numIters)") }
        if let w = warmupIters, w < 0 || w > numIters { throw fail(.warmupIters, "must be in 0...num_iters (\(numIters)), got \(w)") }
        if !(lr > 0) { throw fail(.lr, "must be > 0, got \(lr)") }
        if !(minLR >= 0) { throw fail(.minLR, "must be >= 0, got \(minLR)") }
        if !(weightDecay >= 0) { throw fail(.weightDecay, "must be >= 0, got \(weightDecay)") }
        if !(lossScale > 0 && lossScale.isFinite) { throw fail(.lossScale, "must be a finite number > 0, got \(lossScale)") }
        if let w = sharedArtifactsWeightDecay, !(w >= 0) { throw fail(.sharedArtifactsWeightDecay, "must be >= 0, got \(w)") }
        if pixelBsz < 1 { throw fail(.pixelBsz, "must be >= 1, got \(pixelBsz)") }
        if !(0...1).contains(freezeSharedArtifactsAfter) {
            throw fail(.freezeSharedArtifactsAfter, "must be in [0, 1], got \(freezeSharedArtifactsAfter)")
        }
        if nLevels < 1 { throw fail(.nLevels, "must be >= 1, got \(nLevels)") }
        if nFeaturesPerLevel < 1 { throw fail(.nFeaturesPerLevel, "must be >= 1, got \(nFeaturesPerLevel)") }
        if !(4...30).contains(log2HashmapSize) { throw fail(.log2HashmapSize, "must be in 4...30, got \(log2HashmapSize)") }
        if baseResolution < 2 { throw fail(.baseResolution, "must be >= 2, got \(baseResolution)") }
        if maxResolution < baseResolution { throw fail(.maxResolution, "must be >= base_resolution (\(baseResolution)), got \(maxResolution)") }
        if !(0...2).contains(coordJitter) { throw fail(.coordJitter, "must be in [0, 2] token spacings, got \(coordJitter)") }
    }
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
}

/// DVT stage 1 on one image, a task of the one Trainer (its `TrainingTask` conformance is in
/// Stage1Fit.swift, beside the fit): it owns F, G and h, samples `pixelBsz` tokens per step from all
/// views and computes `SingleImageDenoiser.loss`.
///
/// Parameter keys: `field.` + `NeuralFeatureField` keys (`field.grid.params` is row-sparse, row
/// width = features per level), `denoiser.` + `SingleImageDenoiser` keys.
///
/// Randomness: `seed` initialises the models (field table, field MLP, then G, then h, in that
/// order); the token batches come from the generator the trainer passes to `loss`.
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
