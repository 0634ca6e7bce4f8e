import DVT
import TensorCore
import Training
import Vision

/// A tiny random-weights ViT (depth 2, dim 32, patch 14) so SRT jobs run in milliseconds.
func tinyViT(seed: UInt64 = 3, patch: Int = 14) -> VisionTransformer {
    var cfg = ViTConfig(name: "tiny_patch\(patch)", patchSize: patch, embedDim: 32, depth: 2, heads: 2, imageSize: 4 * patch)
    cfg.layerScale = true
    return VisionTransformer(config: cfg, seed: seed)
}

/// SRT options for the tiny ViT's last block.
func srtOptions(dx: Int = 2, dy: Int = 2, aggregate: SRTAggregate = .mean, batch: Int = 8) -> SRT.Options {
    var o = SRT.Options()
    o.dx = dx; o.dy = dy; o.aggregate = aggregate; o.batchSize = batch
    o.layer = 1
    return o
}

/// The smallest training task: one parameter and its sum as the loss, for a Trainer whose
/// schedule or wiring is under test rather than its training.
final class OneParameterTask: TrainingTask {
    let parameters: [(String, Tensor)] = [("w", Tensor([1, 2], shape: [2], requiresGrad: true))]

    func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
        (parameters[0].1.sum(), [:])
    }
}
