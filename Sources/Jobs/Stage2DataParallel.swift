import DVT
import Distributed
import Foundation
import TensorCore
import Training

// Stage 2 data-parallel over MPI (`mpirun -np R dvt stage2 …`). The whole integration is this
// file plus three small seams: `Trainer.afterBackward` (one gradient reduction per step, after
// backward and before the optimiser step), `Trainer.writesOutputs` (rank 0 alone writes), and
// `Stage2Task.shard` / `reduceSums` (each rank's slice of the global batch, sharded validation).
//
// Semantics: stage2.batch_size is the global batch. Every rank draws the same seeded global batch
// from its own copy of the sampler (so the sample order is the single-process order) and takes
// its equal, contiguous slice; the loss is a mean, so the average of the ranks' slice-gradients
// is the gradient of the global batch, and the run equals the single-process one up to the
// order of the floating-point sums.

extension Stage2Runner {
    /// Attaches `communicator` to one run: checks the batch divides, logs this rank's start line,
    /// shards batches and validation, averages gradients, and leaves the writing to rank 0.
    /// Returns the averager (its allreduce time is the benchmark's communication share).
    @discardableResult
    public static func attachDataParallel(
        _ communicator: Communicator, task: Stage2Task, trainer: Trainer,
        log: (String) -> Void
    ) throws -> GradientAverager {
        let r = communicator.rank, n = communicator.size
        guard task.batchSize % n == 0 else {
            throw Stage2Error(
                "stage2.batch_size \(task.batchSize) is the global batch and must divide evenly over the \(n) MPI ranks (got a remainder of \(task.batchSize % n)); set stage2.batch_size to a multiple of \(n)"
            )
        }
        let host = ProcessInfo.processInfo.hostName
        log(
            "stage2: rank \(r) of \(n) on \(host) (pid \(getpid())): \(task.batchSize / n) of every global batch of \(task.batchSize), \(task.validation.count / n + (r < task.validation.count % n ? 1 : 0)) validation pairs\(r == 0 ? "; rank 0 writes the outputs" : "")"
        )
        task.shard = (r, n)
        task.reduceSums = { try communicator.allreduceSum(&$0) }
        let averager = trainer.averageOverRanks(communicator) { task.parameters }
        return averager
    }

    /// Whether this process writes the outputs and the final report: rank 0 of an MPI job, or a
    /// single-process run.
    public static var isRootProcess: Bool { ((try? Communicator.world())??.rank ?? 0) == 0 }

    /// Under MPI, a rank that fails ends the whole job (MPI_Abort) after saying why, so the other
    /// ranks never wait forever in the next allreduce. Returns for single-process runs.
    public static func abortOtherRanksIfParallel(after error: Error) {
        guard let c = try? Communicator.world(), c.size > 1 else { return }
        FileHandle.standardError.write(Data("stage2: rank \(c.rank) of \(c.size) failed: \(error)\nstage2: aborting all \(c.size) ranks\n".utf8))
        c.abort(code: 1)
    }
}

extension Trainer {
    /// The data-parallel seam that stage 2 and fine-tuning share: after every backward, the
    /// gradients, the loss and the metrics are averaged over the ranks (metrics in sorted key
    /// order, the same on every rank), and only rank 0 writes outputs. Returns the averager,
    /// whose allreduce time is the benchmarks' communication share.
    @discardableResult
    func averageOverRanks(_ communicator: Communicator, parameters: @escaping () -> [(String, Tensor)]) -> GradientAverager {
        let averager = GradientAverager(communicator: communicator)
        afterBackward = { loss, metrics in
            let keys = metrics.keys.sorted()
            var scalars = [loss] + keys.map { metrics[$0]! }
            try averager.average(parameters(), scalars: &scalars)  // read each step: the set may change
            loss = scalars[0]
            for (i, k) in keys.enumerated() { metrics[k] = scalars[i + 1] }
        }
        writesOutputs = communicator.rank == 0
        return averager
    }
}
