import ArgumentParser
import Bench
import Distributed
import Formats
import Foundation
import Jobs
import TensorCore

extension DVTCommand.BenchCommand {
    /// `dvt bench denoiser-ranks`: the data-parallel stage-2 step, run under mpirun (or alone).
    struct DenoiserRanksBench: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "denoiser-ranks",
            abstract: "Stage-2 step time with data parallelism: run alone (1 rank) or under `mpirun -np R`; reports the allreduce share.",
            discussion: """
                Compare, on one machine, 1 rank × 2 threads with 2 ranks × 1 thread at the same global batch:
                  DVT_NUM_THREADS=2 dvt bench denoiser-ranks
                  mpirun -np 2 -x DVT_NUM_THREADS=1 dvt bench denoiser-ranks
                """)
        @OptionGroup var compute: ComputeOptions
        @Option(help: "Channels C of the feature maps.") var dim = 768
        @Option(help: "Grid side (maps are grid × grid).") var grid = 37
        @Option(help: "Global batch (split evenly over the ranks).") var globalBatch = 2
        @Option var steps = 5

        func run() throws {
            let comm = try Communicator.world()
            let t = try Bench.stage2DataParallelStep(dim: dim, grid: grid, globalBatch: globalBatch, steps: steps, communicator: comm)
            guard (comm?.rank ?? 0) == 0 else { return }
            print(
                String(
                    format:
                        "stage-2 data-parallel step, C %d grid %d, %d parameters (%.1f MB of fp32 gradients): %d rank(s) × %d thread(s), global batch %d (%d per rank): %.1f ms/step, allreduce %.1f ms (%.1f%%)",
                    dim, grid, t.parameters, Double(4 * t.parameters) / 1e6, t.ranks, Parallel.threads, globalBatch, t.localBatch,
                    1000 * t.stepSeconds, 1000 * t.allreduceSeconds, 100 * t.allreduceSeconds / t.stepSeconds))
        }
    }
}
