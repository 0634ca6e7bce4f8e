import DVT
import Formats
import Foundation
import Jobs
import NN
import Settings
import TensorCore
import Training
import Vision

extension Bench {
    /// One stage-2 training step as the Trainer runs it — the real `Denoiser` (pos_embed + one
    /// block) on (B, grid, grid, C), DVT's loss, backward, AdamW — on in-memory random maps, as
    /// `dvt_torch.py stage2-bench` times it; median seconds per step.
    public static func stage2Step(dim: Int, grid: Int, batch: Int, steps: Int = 10, precision: Precision = .fp32) throws -> Double {
        let denoiser = try Denoiser(config: DenoiserConfig(dim: dim, grid: (grid, grid)), seed: 0)
        denoiser.precision = precision
        let opt = AdamW(parameters: denoiser.namedParameters(), lr: 1e-4, betas: (0.9, 0.999), weightDecay: 1e-5)
        var rng = RandomGenerator(seed: 1)
        let x = Tensor.normal([batch, grid, grid, dim], rng: &rng)  // (B, H, W, C)
        let y = Tensor.normal([batch, grid, grid, dim], rng: &rng)  // (B, H, W, C)
        return median(warmup: 2, iterations: steps) {
            let loss = denoiserLoss(denoiser(x), y).loss
            opt.zeroGrad()
            loss.backward()
            opt.step()
        }
    }

    /// Denoiser inference throughput (no graph), feature maps per second, at (B, grid, grid, C).
    public static func stage2MapsPerSecond(dim: Int, grid: Int, batch: Int, steps: Int = 10, precision: Precision = .fp32) throws -> Double {
        let denoiser = try Denoiser(config: DenoiserConfig(dim: dim, grid: (grid, grid)), seed: 0)
        denoiser.precision = precision
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.normal([batch, grid, grid, dim], rng: &rng)  // (B, H, W, C)
        let t = median(warmup: 1, iterations: steps) { _ = denoiser.denoise(x) }
        return Double(batch) / t
    }
}
