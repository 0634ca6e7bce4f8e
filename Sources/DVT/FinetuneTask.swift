import Formats
import Foundation
import NN
import Settings
import TensorCore
import Training
import Vision

// Fine-tuning the ViT itself towards a frozen teacher, as one task of the one trainer:
// DVT v2's stage 3 (Jiawei-Yang/Denoising-ViT main_distillation.py) and SRT's self-distillation
// (donglao/srt distill_utils.py `distill`). B batch, C channels, Gh × Gw token grid.

public struct FinetuneError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }
    public init(_ d: String) { description = d }
}

/// The distillation objective: the `finetune.loss` choice (its cases are documented in
/// Settings.swift).
public typealias FinetuneLoss = DVTSettings.Finetune.Loss

/// A frozen teacher: normalised images (B, 3, H, W) → target features (B, Gh, Gw, C).
public protocol FinetuneTeacher: AnyObject {
    func targets(_ images: Tensor) throws -> Tensor
}

/// DVT's teacher: the frozen pretrained ViT's last-layer features (final norm on) through the
/// stage-2 denoiser, the `denoised_feats` of `Denoiser(vit=pretrained_vit)`
/// (main_distillation.py lines 131-147 and 236; online_denoiser.py lines 72-92).
public final class DenoiserTeacher: FinetuneTeacher {
    public let vit: VisionTransformer
    public let denoiser: Denoiser
    public let stride: Int?

    public init(vit: VisionTransformer, denoiser: Denoiser, stride: Int?) throws {
        guard denoiser.config.dim == vit.config.embedDim else {
            throw FinetuneError(
                "the denoiser denoises \(denoiser.config.dim)-channel features but \(vit.config.name) has \(vit.config.embedDim) channels")
        }
        self.vit = vit
        self.denoiser = denoiser
        self.stride = stride
    }

    public func targets(_ images: Tensor) throws -> Tensor {
        let last = vit.config.depth - 1
        let raw = vit.features(images, layers: [last], norm: true, stride: stride)[last]!.patch  // (B, Gh, Gw, C)
        return denoiser.denoise(raw)  // (B, Gh, Gw, C)
    }
}

/// SRT's teacher: the frozen ViT's own SRT ensemble at token resolution, last layer, final norm
/// on (SRT distils `get_intermediate_layers(n=1)` towards its ensembled features; main.py
/// --do_extract then --do_distill). Mean aggregation takes the exact fast path.
public final class SRTTeacher: FinetuneTeacher {
    public let srt: SRT

    public init(srt: SRT) { self.srt = srt }

    public func targets(_ images: Tensor) throws -> Tensor {
        let b = images.shape[0]
        var maps: [Tensor] = []
        for i in 0..<b {
            let image = images.slice(axis: 0, i..<(i + 1)).reshape(Array(images.shape.dropFirst()))  // (3, H, W)
            let out = try srt.run(image, resolution: .token, fast: srt.options.aggregate == .mean).output  // (Gh, Gw, C)
            maps.append(out.reshape([1] + out.shape))
        }
        return Tensor.concat(maps, axis: 0)  // (B, Gh, Gw, C)
    }
}

/// A teacher that returns fixed maps, one per image index (tests, cached targets).
public final class FixedTeacher: FinetuneTeacher {
    let body: (Tensor) throws -> Tensor
    public init(_ body: @escaping (Tensor) throws -> Tensor) { self.body = body }
    public func targets(_ images: Tensor) throws -> Tensor { try body(images) }
}

public struct FinetuneOptions: Sendable, Equatable {
    public var loss: FinetuneLoss = .mseCosine
    /// SRT's regulariser weight: `loss += l2Penalty · ‖θ‖₂` over the trainable parameters, the
    /// unsquared norm (distill_utils.py `l2_penalty`, lines 65-70, added at line 92). 0 = off (DVT).
    public var l2Penalty: Double = 0
    /// Images per step.
    public var batchSize: Int = 1
    /// Patch stride of student and teacher; nil = the patch size.
    public var stride: Int?
    /// Random horizontal flip with p = 0.5 (torchvision `RandomHorizontalFlip`, main_distillation.py line 166).
    public var horizontalFlip = true
    /// Per-block gradient checkpointing of the student (`--grad_checkpointing`).
    public var checkpointBlocks = false
    /// Keep each (image, flip) teacher map in memory after its first use: the teacher is
    /// frozen, so a map never changes; pays when the data set is revisited (SRT's 50 epochs).
    public var cacheTeacher = false
    public init() {}
}

/// The fine-tuning task: a batch of images from an endless seeded shuffle, randomly flipped,
/// the frozen teacher's targets, the student's last-layer features and the loss.
public final class FinetuneTask: TrainingTask {
    public let student: VisionTransformer
    public let teacher: FinetuneTeacher
    public let options: FinetuneOptions
    /// Image `i` as the network input (3, H, W): resized and normalised, not yet flipped.
    let loadImage: (Int) throws -> Tensor
    public let imageCount: Int
    public private(set) var sampler: ShuffledSampler
    private var teacherCache: [Int: Tensor] = [:]
    /// Data-parallel runs (`FinetuneRunner`, under mpirun): this rank takes slice `rank` of
    /// `size` equal slices of every global batch. Every rank draws the whole global batch and
    /// all its flips, so the sampler and RNG streams stay those of one process.
    public var shard: (rank: Int, size: Int) = (0, 1)
    /// When set, teacher maps are also kept here as `<image>_<flip>.npy` (float32, exact), so a
    /// later run or a resumed one skips the teacher: the caller makes the folder specific to the
    /// teacher, its weights and the input geometry (`FinetuneRunner`, finetune.cache_teacher: disk).
    public var teacherCacheDirectory: URL?

    public init(
        student: VisionTransformer, teacher: FinetuneTeacher, imageCount: Int, options: FinetuneOptions,
        seed: UInt64, loadImage: @escaping (Int) throws -> Tensor
    ) throws {
        guard imageCount > 0 else { throw FinetuneError("fine-tuning has no training images") }
        guard options.batchSize >= 1 else { throw FinetuneError("batch size must be >= 1, got \(options.batchSize)") }
        guard student.namedParameters().contains(where: { $0.1.requiresGrad }) else {
            throw FinetuneError("no ViT parameter is trainable: thaw the student first (finetune.thaw)")
        }
        self.student = student
        self.teacher = teacher
        self.options = options
        self.imageCount = imageCount
        self.loadImage = loadImage
        // Its own stream, derived from the run seed, so the checkpointed state is (epoch, cursor).
        sampler = ShuffledSampler(count: imageCount, seed: seed ^ 0x4649_4E45_5455_4E45)  // "FINETUNE"
    }

    /// Every ViT parameter; the frozen ones stay listed (checkpointed), the optimiser skips them.
    public var parameters: [(String, Tensor)] { student.namedParameters() }

    /// The batch of `indices` with the flips drawn from `rng`, and the teacher's targets.
    func batch(_ indices: [Int], rng: inout RandomGenerator) throws -> (images: Tensor, targets: Tensor) {
        var inputs: [Tensor] = [], targets: [Tensor?] = [], keys: [Int] = []
        var missing: [Int] = []
        let flips = indices.map { _ in options.horizontalFlip && rng.uniformDouble() < 0.5 }  // the global batch's
        let per = indices.count / shard.size, mine = (shard.rank * per)..<((shard.rank + 1) * per)
        for (k, (i, flip)) in zip(indices[mine], flips[mine]).enumerated() {
            var x = try loadImage(i)  // (3, H, W)
            if flip { x = x.flipped(axis: -1) }  // mirrored left-right
            inputs.append(x.reshape([1] + x.shape))
            let key = 2 * i + (flip ? 1 : 0)
            keys.append(key)
            if let hit = try cachedTarget(key) { targets.append(hit) } else { targets.append(nil); missing.append(k) }
        }
        let images = Tensor.concat(inputs, axis: 0)  // (B, 3, H, W)
        if !missing.isEmpty {
            let sub = missing.count == inputs.count ? images : Tensor.concat(missing.map { inputs[$0] }, axis: 0)
            let computed = try withNoGrad { try teacher.targets(sub) }  // (b, Gh, Gw, C)
            for (j, k) in missing.enumerated() {
                let t = computed.slice(axis: 0, j..<(j + 1))
                targets[k] = t
                if options.cacheTeacher { teacherCache[keys[k]] = t }
                if let dir = teacherCacheDirectory {
                    try Npy.write(t.reshape(Array(t.shape.dropFirst())), to: dir.appendingPathComponent(Self.cacheName(keys[k])))
                }
            }
        }
        return (images, Tensor.concat(targets.map { $0! }, axis: 0))  // (B, Gh, Gw, C)
    }

    static func cacheName(_ key: Int) -> String { "\(key / 2)_\(key % 2).npy" }

    /// The teacher map of (image, flip) `key` from memory or the cache folder, as (1, Gh, Gw, C).
    func cachedTarget(_ key: Int) throws -> Tensor? {
        if options.cacheTeacher, let hit = teacherCache[key] { return hit }
        guard let dir = teacherCacheDirectory else { return nil }
        let url = dir.appendingPathComponent(Self.cacheName(key))
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let map = try Npy.read(url)  // (Gh, Gw, C)
        let t = map.reshape([1] + map.shape)
        if options.cacheTeacher { teacherCache[key] = t }
        return t
    }

    public func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        let (images, target) = try batch(sampler.next(options.batchSize), rng: &rng)
        let prediction = student.trainingFeatures(
            images, layer: student.config.depth - 1, stride: options.stride,
            checkpointBlocks: options.checkpointBlocks
        ).patch  // (B, Gh, Gw, C)
        guard prediction.shape == target.shape else {
            throw FinetuneError("teacher targets \(target.shape) do not match the student's features \(prediction.shape)")
        }
        var metrics: [String: Double] = [:]
        var loss: Tensor
        switch options.loss {
        case .mseCosine:
            let (l, mse, cos) = denoiserLoss(prediction, target)
            loss = l
            metrics["l2_loss"] = Double(mse.item)  // DVT's log names
            metrics["cosine_similarity_loss"] = 1 - Double(cos.item)
        case .mse: loss = Tensor.mseLoss(prediction, target)
        case .l1: loss = Tensor.l1Mean(prediction - target)
        }
        if options.l2Penalty > 0 {
            metrics["emp_risk"] = Double(loss.item)  // SRT's log names
            let reg = Self.parameterNorm(student)
            metrics["reg"] = Double(reg.item)
            loss = loss + reg * Float(options.l2Penalty)
        }
        return (loss, metrics)
    }

    /// ‖θ‖₂ over the trainable parameters, unsquared (SRT's `l2_penalty`).
    static func parameterNorm(_ model: VisionTransformer) -> Tensor {
        var total: Tensor?
        for (_, p) in model.namedParameters() where p.requiresGrad {
            let s = p.square().sum()
            total = total.map { $0 + s } ?? s
        }
        return (total ?? Tensor.scalar(0)).sqrt()
    }

    /// The student's resampled position embeddings were cached from older weights.
    public func didFinishTraining() { student.invalidatePositionCache() }

    public func extraState() -> [String: Tensor] { sampler.extras }

    public func loadExtraState(_ state: [String: Tensor]) throws {
        do {
            try sampler.restore(extras: state, items: "images", inputs: "the image list", writer: "dvt finetune")
        } catch { throw FinetuneError("\(error)") }
    }
}
