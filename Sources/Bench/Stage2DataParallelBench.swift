import DVT
import Distributed
import Foundation
import NN
import TensorCore

/// One data-parallel stage-2 step's timing: the whole step and the part spent in MPI_Allreduce.
public struct DataParallelStepTiming: Sendable {
    public var ranks: Int
    public var localBatch: Int
    public var parameters: Int
    /// Median seconds per step (forward, backward, allreduce, AdamW).
    public var stepSeconds: Double
    /// Mean seconds per step inside MPI_Allreduce (0 for one process).
    public var allreduceSeconds: Double
}

extension Bench {
    /// The stage-2 training step as `mpirun -np R dvt stage2` runs it: the real Denoiser on this
    /// rank's slice (globalBatch / R maps) of in-memory random (B, grid, grid, C) maps, DVT's loss,
    /// backward, the fused-buffer gradient average (`GradientAverager`), AdamW. Without a launcher
    /// it is the single-process step at the full global batch.
    public static func stage2DataParallelStep(
        dim: Int, grid: Int, globalBatch: Int, steps: Int,
        communicator: Communicator?
    ) throws -> DataParallelStepTiming {
        let ranks = communicator?.size ?? 1
        guard globalBatch % ranks == 0 else {
            throw Stage2Error("--global-batch \(globalBatch) must divide evenly over the \(ranks) MPI ranks")
        }
        let local = globalBatch / ranks
        let denoiser = try Denoiser(config: DenoiserConfig(dim: dim, grid: (grid, grid)), seed: 0)
        let params = denoiser.namedParameters()
        let opt = AdamW(parameters: params, lr: 1e-4, betas: (0.9, 0.999), weightDecay: 1e-5)
        var rng = RandomGenerator(seed: 1 &+ UInt64(communicator?.rank ?? 0))
        let x = Tensor.normal([local, grid, grid, dim], rng: &rng)  // (b, H, W, C)
        let y = Tensor.normal([local, grid, grid, dim], rng: &rng)  // (b, H, W, C)
        let averager = communicator.map(GradientAverager.init)
        var scalars: [Double] = [0]
        communicator?.barrier()
        let step = median(warmup: 2, iterations: steps) {
            let loss = denoiserLoss(denoiser(x), y).loss
            opt.zeroGrad()
            loss.backward()
            if let averager { try? averager.average(params, scalars: &scalars) }
            opt.step()
        }
        let reduce = averager.map { $0.allreduceSeconds / Double(max($0.steps, 1)) } ?? 0
        return DataParallelStepTiming(
            ranks: ranks, localBatch: local, parameters: denoiser.parameterCount,
            stepSeconds: step, allreduceSeconds: reduce)
    }
}
