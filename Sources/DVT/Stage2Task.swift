import Formats
import Foundation
import NN
import TensorCore
import Training
import Vision

// Stage 2: train DVT's generalizable denoiser on (raw, target) feature pairs that stage 1 (or
// SRT) wrote, through the one Trainer. Letters: B batch, H × W feature grid, C channels.

/// One training example: a raw ViT feature map and the map the denoiser should produce.
public struct FeaturePair: Sendable, Equatable {
    public var name: String
    public var raw: URL
    public var target: URL

    public init(name: String, raw: URL, target: URL) {
        self.name = name
        self.raw = raw
        self.target = target
    }
}

/// Reads feature maps and stacks them into batches, checking every map against the grid and
/// width of the run.
public struct FeatureMapReader: Sendable {
    public let height: Int
    public let width: Int
    public let dim: Int

    /// (H, W, C) of the map at `url`; a leading 1 ((1, H, W, C), as DVT's `.squeeze()` tolerates) is accepted.
    public static func shape(of url: URL) throws -> (Int, Int, Int) {
        let t = try Npy.read(url)
        let s = t.shape.first == 1 && t.rank == 4 ? Array(t.shape.dropFirst()) : t.shape
        guard s.count == 3 else { throw Stage2Error("\(url.path): feature map has shape \(t.shape), expected (H, W, C)") }
        return (s[0], s[1], s[2])
    }

    public func read(_ url: URL) throws -> Tensor {
        let t = try Npy.read(url)
        guard t.count == height * width * dim,
            t.shape == [height, width, dim] || t.shape == [1, height, width, dim]
        else {
            throw Stage2Error(
                "\(url.path): feature map has shape \(t.shape), but this run's maps are (\(height), \(width), \(dim)) — was it written with another input size, stride or model?"
            )
        }
        // A NaN here would surface only as "loss is nan at step N", without the file.
        do { try t.requireFinite(url.path) } catch {
            throw Stage2Error("\(error); stage 2 cannot train on it: re-extract it or leave its image out of the list")
        }
        return t.reshape([1, height, width, dim])  // (1, H, W, C)
    }

    /// (B, H, W, C) from B files.
    public func batch(_ urls: [URL]) throws -> Tensor {
        let maps = try urls.map(read)
        return maps.count == 1 ? maps[0] : Tensor.concat(maps, axis: 0)
    }
}

/// DVT's stage-2 objective, `mse(p, t) + (1 − mean cos(p, t))`, with cosine along channels.
public func denoiserLoss(_ prediction: Tensor, _ target: Tensor) -> (loss: Tensor, mse: Tensor, cos: Tensor) {
    let mse = Tensor.mseLoss(prediction, target)  // scalar
    let cos = Tensor.cosineSimilarity(prediction, target, axis: -1).mean()  // scalar
    return (mse + (1 - cos), mse, cos)
}

/// The stage-2 training task: batches of (raw, target) maps from an endless seeded shuffle,
/// the denoiser's prediction, and DVT's loss. Validation reports loss and cosine on held-out
/// pairs next to the identity baseline (raw used as the prediction), computed once.
public final class Stage2Task: TrainingTask {
    public let denoiser: Denoiser
    public let train: [FeaturePair]
    public let validation: [FeaturePair]
    public let batchSize: Int
    public let reader: FeatureMapReader
    public private(set) var sampler: ShuffledSampler
    /// Identity baseline on the validation pairs: loss and mean cosine of raw vs target.
    public private(set) var identityBaseline: (loss: Double, cos: Double)?
    /// Data-parallel runs (`Stage2Runner.attachDataParallel`): this rank takes slice `rank` of
    /// `size` equal slices of every global batch and every size-th validation pair.
    public var shard: (rank: Int, size: Int) = (0, 1)
    /// Sums validation totals over the ranks (nil: one process).
    public var reduceSums: ((inout [Double]) throws -> Void)?

    public init(denoiser: Denoiser, train: [FeaturePair], validation: [FeaturePair], batchSize: Int, seed: UInt64) throws {
        guard !train.isEmpty else { throw Stage2Error("stage 2 has no training pairs") }
        guard batchSize >= 1 else { throw Stage2Error("batch size must be >= 1, got \(batchSize)") }
        self.denoiser = denoiser
        self.train = train
        self.validation = validation
        self.batchSize = batchSize
        let c = denoiser.config
        reader = FeatureMapReader(height: c.gridHeight, width: c.gridWidth, dim: c.dim)
        // The shuffle has its own stream, derived from the run seed, so its state is (epoch, cursor).
        sampler = ShuffledSampler(count: train.count, seed: seed ^ 0x5354_4147_4532)  // "STAGE2"
    }

    public var parameters: [(String, Tensor)] { denoiser.namedParameters() }

    public func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        let idx = Stage2Task.slice(sampler.next(batchSize), rank: shard.rank, of: shard.size)
        let raw = try reader.batch(idx.map { train[$0].raw })  // (B, H, W, C)
        let target = try reader.batch(idx.map { train[$0].target })  // (B, H, W, C)
        let (loss, mse, cos) = denoiserLoss(denoiser(raw), target)
        // DVT's log names.
        return (loss, ["l2_loss": Double(mse.item), "cosine_similarity_loss": 1 - Double(cos.item)])
    }

    /// Mean loss and cosine over `pairs` (map-weighted; every map has the same grid), with
    /// `predict` (the denoiser, or the identity).
    func evaluate(_ allPairs: [FeaturePair], predict: (Tensor) -> Tensor) throws -> (loss: Double, mse: Double, cos: Double) {
        let pairs = shard.size == 1 ? allPairs : stride(from: shard.rank, to: allPairs.count, by: shard.size).map { allPairs[$0] }
        var loss = 0.0, mse = 0.0, cos = 0.0
        for start in stride(from: 0, to: pairs.count, by: batchSize) {
            let chunk = Array(pairs[start..<min(start + batchSize, pairs.count)])
            let raw = try reader.batch(chunk.map(\.raw))  // (b, H, W, C)
            let target = try reader.batch(chunk.map(\.target))  // (b, H, W, C)
            let r = withNoGrad { denoiserLoss(predict(raw), target) }
            let n = Double(chunk.count)
            loss += n * Double(r.loss.item); mse += n * Double(r.mse.item); cos += n * Double(r.cos.item)
        }
        if let reduceSums {
            var sums = [loss, mse, cos]
            try reduceSums(&sums)
            (loss, mse, cos) = (sums[0], sums[1], sums[2])
        }
        let n = Double(max(allPairs.count, 1))
        return (loss / n, mse / n, cos / n)
    }

    /// This rank's contiguous slice of a global batch (all of it for one process).
    public static func slice(_ global: [Int], rank: Int, of size: Int) -> [Int] {
        let per = global.count / size
        return Array(global[(rank * per)..<((rank + 1) * per)])
    }

    public func validate(step: Int) throws -> [String: Double] {
        guard !validation.isEmpty else { return [:] }
        if identityBaseline == nil {
            let id = try evaluate(validation) { $0 }
            identityBaseline = (id.loss, id.cos)
        }
        let r = try evaluate(validation) { self.denoiser.denoise($0) }
        return [
            "loss": r.loss, "mse": r.mse, "cos": r.cos,
            "identity_loss": identityBaseline!.loss, "identity_cos": identityBaseline!.cos,
        ]
    }

    public func extraState() -> [String: Tensor] { sampler.extras }

    public func loadExtraState(_ state: [String: Tensor]) throws {
        do {
            try sampler.restore(extras: state, items: "training pairs", inputs: "the data list or feature tree", writer: "stage 2")
        } catch { throw Stage2Error("\(error)") }
    }
}
