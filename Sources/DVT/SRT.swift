import Foundation
import Settings
import TensorCore
import Vision

// Stochastic Resonance Transformer (SRT): average the features of many sub-token translations
// of the input, each mapped back to the original frame, so the position-locked part of the
// features (the artifact) is blurred out while the content part is super-resolved.
//
// Letters: C channels, P patch size, S patch stride, Gh × Gw token grid, Hp = Gh·S, Wp = Gw·S
// pixel-map size, N views, (i, j) a view's shift in pixels (down, right).

/// How the views of one SRT ensemble are combined: the `srt.aggregate` choice.
public typealias SRTAggregate = DVTSettings.SRT.Aggregate

/// The resolution of an SRT output.
public enum SRTResolution: Sendable, Equatable {
    /// The token grid (Gh, Gw): the pixel map average-pooled over every S×S token cell (SRT's
    /// "ensemble" output, the one that replaces the raw features).
    case token
    /// scaleFactor × the token grid (Gh·f, Gw·f): average pooling with an S/f window.
    case fine(scaleFactor: Int)
    /// The pixel map itself (Gh·S, Gw·S).
    case pixel

    /// Side of the pooling window, in pixels, for stride `s`.
    func window(stride s: Int) -> Int {
        switch self {
        case .token: return s
        case .fine(let f): return s / f
        case .pixel: return 1
        }
    }
}

/// SRT on top of a `VisionTransformer`.
///
/// For every integer offset (i, j) in [−dy, dy] × [−dx, dx] the normalised input is translated
/// (content moves down by i and right by j, vacated pixels 0 — torchvision's
/// `TF.affine(translate=[j, i])` on the tensor), the chosen layer's features are computed, each
/// token map is upsampled to pixels with nearest neighbour (token (a, b) covers pixels
/// [a·S, (a+1)·S) × [b·S, (b+1)·S)), translated back by (−i, −j) with zero fill, and the views are
/// aggregated per pixel:
///
/// ```
/// mean:   U(y, x) = 1/N · Σ_k F_k(⌊(y+i_k)/S⌋, ⌊(x+j_k)/S⌋)      (0 where that token is off the grid)
/// median: U(y, x) = lower median over k of the same values (torch.median's convention)
/// ```
///
/// Zero-filled values count as views: the mean divides by N, zeros included, exactly as the
/// official code's `acc / len(shifts)` does (the srt-bench of scripts/reference/dvt_torch.py), so
/// the outermost ring of a map is damped; the median treats them the same way.
///
/// Weighting: by default the views are the unshifted image first and then every offset of the
/// grid, (0, 0) included again (N = (2dy+1)(2dx+1) + 1), as the official code builds its shift
/// list, so the unshifted view counts twice. `uniform` drops the extra view (N = (2dy+1)(2dx+1)).
/// The repeated view is computed once: its features are reused, not recomputed.
///
/// Fast variant (`fast: true`, mean only): pooling is linear, so the pooled mean of a view is a
/// separable, bilinear-like mix of each token and its neighbours with overlap weights (for the
/// token grid and 0 ≤ i, j < S: (S−i)(S−j)/S² on the token, i(S−j)/S² on the one below, …; see
/// `poolWeights`, which covers any shift, |i| ≥ S included). It gives the token and fine outputs
/// exactly, without building the (Hp, Wp, C) map. A median has no such form (the median of
/// pooled values is not the pooled median), so the median always takes the pixel path.
///
/// Stride S < P (DVT's overlapping patches): tokens are S pixels apart, so the pixel map has S
/// pixels per token and token (a, b) covers the S×S cell around its receptive-field centre
/// (a·S + P/2, b·S + P/2); the map starts (P − S)/2 pixels into the image. Translations only
/// care about the spacing, which is S pixels, so everything above holds with S in place of P.
///
/// - Paper: Lao et al., "Sub-token ViT Embedding via Stochastic Resonance Transformers", ICML 2024.
public struct SRT {
    @dynamicMemberLookup
    public struct Options: Sendable, Equatable {
        /// The `srt.*` keys, declared once in Settings with their defaults: dx / dy (largest
        /// horizontal / vertical shift in pixels), aggregate, uniform (every shift weighted once
        /// instead of counting (0, 0) twice) and batch_size (views per ViT forward). Read and set
        /// as `options.dx` through the member lookup below; `enabled` is the pipeline's, unused here.
        public var keys = DVTSettings.SRT()
        /// Forward batches concurrently, one single-threaded forward per core (see `viewFeatures`).
        /// Off by default because it switches the engine to one thread process-wide while it runs,
        /// which other work in the same process would feel as a slowdown (never in its results:
        /// the engine's bits do not depend on the thread count). `dvt srt`, `dvt run` and
        /// `dvt bench srt` turn it on (ViT-S/14 at 224² on 2 cores: 7.7 s per image against 9.1 s
        /// with `dvt bench srt --serial-views`, two runs each).
        public var parallelViews = false
        /// 0-based block index.
        public var layer = 0
        /// Apply the final LayerNorm to the features (DVT and SRT do).
        public var norm = true
        /// Patch stride; nil = the patch size.
        public var stride: Int?
        public init() {}

        /// The `srt.*` section as SRT's options, the one translation the pipeline, the probe's
        /// feature cache and the fine-tuning teacher share; `layer` and `stride` come from the
        /// caller (each picks its own layer).
        public init(_ keys: DVTSettings.SRT, layer: Int, stride: Int?) {
            self.keys = keys
            self.layer = layer
            self.stride = stride
        }

        public subscript<T>(dynamicMember path: WritableKeyPath<DVTSettings.SRT, T>) -> T {
            get { keys[keyPath: path] }
            set { keys[keyPath: path] = newValue }
        }
    }

    /// Raw and ensembled features of one image.
    public struct Result {
        /// (Gh, Gw, C): the features of the unshifted image.
        public var raw: Tensor
        /// (H', W', C) at the requested resolution.
        public var output: Tensor
    }

    public let model: VisionTransformer
    public var options: Options

    public init(model: VisionTransformer, options: Options) throws {
        guard options.dx >= 0, options.dy >= 0 else { throw SRTError("SRT: dx and dy must be >= 0, got dx \(options.dx), dy \(options.dy)") }
        guard options.batchSize >= 1 else { throw SRTError("SRT: batch size must be >= 1, got \(options.batchSize)") }
        guard options.layer >= 0, options.layer < model.config.depth else {
            throw SRTError("SRT: layer \(options.layer) out of range 0..<\(model.config.depth) for \(model.config.name)")
        }
        let s = options.stride ?? model.config.patchSize
        guard s >= 1, s <= model.config.patchSize else {
            throw SRTError("SRT: stride \(s) must be in 1...\(model.config.patchSize) (the patch size)")
        }
        self.model = model
        self.options = options
    }

    /// Token spacing in pixels.
    public var stride: Int { options.stride ?? model.config.patchSize }

    /// The views in aggregation order, as (i, j) = (down, right) pixel shifts.
    public var shifts: [(Int, Int)] { SRT.shifts(dx: options.dx, dy: options.dy, uniform: options.uniform) }

    public static func shifts(dx: Int, dy: Int, uniform: Bool) -> [(Int, Int)] {
        var list: [(Int, Int)] = uniform ? [] : [(0, 0)]
        for i in -dy...dy { for j in -dx...dx { list.append((i, j)) } }
        return list
    }

    /// Checks that `resolution` is possible with this model's stride.
    public func validate(_ resolution: SRTResolution) throws {
        if case .fine(let f) = resolution {
            guard f >= 1, stride % f == 0 else {
                throw SRTError("SRT: scale factor \(f) must divide the token stride \(stride) (pooling window stride/scale)")
            }
        }
    }

    // MARK: Views

    /// The features of every distinct shift of one image.
    public struct Views {
        public let dx: Int, dy: Int
        /// Row-major over the shift grid: (i + dy)·(2dx + 1) + (j + dx).
        var maps: [Tensor]
        /// (Gh, Gw, C) features of the view shifted down by i and right by j.
        public subscript(down i: Int, right j: Int) -> Tensor {
            precondition(abs(i) <= dy && abs(j) <= dx, "SRT views: shift (\(i), \(j)) outside ±(\(dy), \(dx))")
            return maps[(i + dy) * (2 * dx + 1) + (j + dx)]
        }
        /// (Gh, Gw, C) features of the unshifted image.
        public var raw: Tensor { self[down: 0, right: 0] }
    }

    /// Features of every distinct shift, forwarded `batchSize` views at a time.
    ///
    /// With `parallelViews` and more than one worker thread, batches are forwarded concurrently,
    /// one single-threaded forward per core, instead of one multi-threaded forward at a time: the
    /// views are independent, so this drops the per-op fork/join of every kernel and BLAS call
    /// (which, with small per-op work and a busy machine, costs more than it parallelises).
    public func viewFeatures(_ image: Tensor) -> Views {
        precondition(image.rank == 3 && image.shape[0] == 3, "SRT input must be a normalised (3, H, W) image, got \(image.shape)")
        let h = image.shape[1], w = image.shape[2]
        let distinct = SRT.shifts(dx: options.dx, dy: options.dy, uniform: true)
        let batches = Swift.stride(from: 0, to: distinct.count, by: options.batchSize).map {
            Array(distinct[$0..<min(distinct.count, $0 + options.batchSize)])
        }
        func forward(_ chunk: [(Int, Int)]) -> [Tensor] {
            let batch = ShiftEnsemble.translatedBatch(image, shifts: chunk)  // (B, 3, H, W)
            return model.features(batch, layers: [options.layer], norm: options.norm, stride: stride)[options.layer]!.patch.unbatched()  // B × (Gh, Gw, C)
        }
        // Concurrent single-threaded forwards: workers take the next batch; kernels run inline.
        let workers = options.parallelViews ? Parallel.threads : 1
        return Views(
            dx: options.dx, dy: options.dy, maps: Parallel.mapConcurrently(batches.count, workers: workers) { forward(batches[$0]) }.flatMap { $0 })
    }

    /// The view list in aggregation order, with repeats sharing one tensor.
    func orderedViews(_ views: Views) -> [(shift: (Int, Int), features: Tensor)] {
        precondition(
            views.dx == options.dx && views.dy == options.dy,
            "SRT: views were computed for dx \(views.dx), dy \(views.dy), options say dx \(options.dx), dy \(options.dy)")
        return shifts.map { ($0, views[down: $0.0, right: $0.1]) }
    }

    // MARK: Ensembles

    /// Runs SRT on one normalised image (3, H, W).
    ///
    /// - Parameter fast: compute the mean on the output grid directly from the token maps
    ///   (`fastMean`), never building the pixel map. Mean aggregation and token/fine resolutions
    ///   only; the median has no such shortcut (a median of pooled values is not the pooled median).
    public func run(_ image: Tensor, resolution: SRTResolution = .token, fast: Bool = false) throws -> Result {
        try validate(resolution)
        if fast && options.aggregate != .mean {
            throw SRTError("SRT: the fast variant exists for mean aggregation only (a median does not commute with pooling)")
        }
        let views = viewFeatures(image)
        return Result(raw: views.raw, output: try ensemble(views, resolution: resolution, fast: fast))
    }

    /// Aggregates view features from `viewFeatures` at a resolution (the second half of `run`),
    /// so the pixel path and the fast variant can share one set of forwards.
    public func ensemble(_ views: Views, resolution: SRTResolution = .token, fast: Bool = false) throws -> Tensor {
        try validate(resolution)
        if fast && options.aggregate != .mean {
            throw SRTError("SRT: the fast variant exists for mean aggregation only (a median does not commute with pooling)")
        }
        let ordered = orderedViews(views)
        let window = resolution.window(stride: stride)
        if fast { return ShiftEnsemble.fastMean(ordered, stride: stride, window: window) }
        let pixel = ShiftEnsemble.pixelAggregate(ordered, stride: stride, median: options.aggregate == .median)
        return window == 1 ? pixel : ShiftEnsemble.avgPool(pixel, window: window)
    }
}
