import COpenMPI
import Foundation
import TensorCore

// Data parallelism over MPI: the process group a launcher (mpirun, srun --mpi=pmix) started,
// and the one collective stage 2 needs, a sum over a flat float32 buffer.
//
// MPI is initialised only when a launcher's environment says this process is one rank of a job
// (`launchedWorldSize`), so a plain `dvt stage2` never touches MPI (libmpi is linked, but an
// unused shared library costs nothing at run time).

public struct CommunicatorError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }
    public init(_ d: String) { description = d }
}

/// The world communicator of an MPI job: this process's rank and the number of ranks.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    // MPI_Init runs once per process; `world()` reads and sets `shared` under `lock`.
    nonisolated(unsafe) private static var shared: Communicator?
    private static let lock = NSLock()

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// The world size a launcher announced in the environment, or nil when not launched:
    /// OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE), PMIx launchers such as `srun --mpi=pmix`
    /// (PMIX_RANK; the size comes from MPI itself) and Slurm's PMI2 (PMI_SIZE).
    public static func launchedWorldSize(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        if let n = env["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) { return n }
        if env["PMIX_RANK"] != nil { return env["PMIX_SIZE"].flatMap(Int.init) ?? 0 }
        if let n = env["PMI_SIZE"].flatMap(Int.init), env["PMI_RANK"] != nil { return n }
        return nil
    }

    /// The job's communicator when this process was started by an MPI launcher (MPI_Init on
    /// first use, finalised at exit), or nil for a plain single-process run.
    public static func world() throws -> Communicator? {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        guard launchedWorldSize() != nil else { return nil }
        var argc: Int32 = 0
        guard MPI_Init(&argc, nil) == dvt_mpi_success() else {
            throw CommunicatorError("MPI_Init failed although the environment names an MPI launcher (OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_SIZE)")
        }
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(dvt_mpi_comm_world(), &r)
        MPI_Comm_size(dvt_mpi_comm_world(), &s)
        let c = Communicator(rank: Int(r), size: Int(s))
        shared = c
        atexit { MPI_Finalize() }
        return c
    }

    /// In-place sum over all ranks of a tensor's elements (MPI_Allreduce, MPI_IN_PLACE). MPI
    /// takes a pointer: this is one of the engine's documented kernel extension points.
    public func allreduceSum(_ buffer: Tensor) throws {
        let count = buffer.count
        guard size > 1, count > 0 else { return }
        let rc = buffer.withUnsafeMutableKernelBuffer {
            MPI_Allreduce(dvt_mpi_in_place(), $0.baseAddress, Int32(count), dvt_mpi_float(), dvt_mpi_sum(), dvt_mpi_comm_world())
        }
        if rc != dvt_mpi_success() { throw CommunicatorError("rank \(rank) of \(size): MPI_Allreduce of \(count) floats failed (code \(rc))") }
    }

    /// In-place sum over all ranks of a few doubles (validation sums).
    public func allreduceSum(_ values: inout [Double]) throws {
        guard size > 1, !values.isEmpty else { return }
        let n = Int32(values.count)
        let rc = values.withUnsafeMutableBufferPointer {
            MPI_Allreduce(dvt_mpi_in_place(), $0.baseAddress, n, dvt_mpi_double(), dvt_mpi_sum(), dvt_mpi_comm_world())
        }
        if rc != dvt_mpi_success() { throw CommunicatorError("rank \(rank) of \(size): MPI_Allreduce of \(n) doubles failed (code \(rc))") }
    }

    /// Waits for every rank.
    public func barrier() { if size > 1 { MPI_Barrier(dvt_mpi_comm_world()) } }

    /// Ends the whole job (every rank) with `code`: a rank that cannot go on must not leave the
    /// others blocked in the next collective.
    public func abort(code: Int32) -> Never {
        MPI_Abort(dvt_mpi_comm_world(), code)
        exit(code)
    }
}

/// Averages gradients over the ranks once per step: every parameter's gradient is packed into one
/// fused float32 buffer, followed by the step's scalars (loss and metrics, so every rank logs and
/// checks the global values), summed with one MPI_Allreduce, divided by the world size and
/// unpacked. Parameters are packed in `parameters` order, which every rank shares.
public final class GradientAverager {
    public let communicator: Communicator
    private var buffer = Tensor(zeros: [0])  // (n + scalars,): the fused gradients, then the scalars
    /// Seconds spent in MPI_Allreduce, summed over steps (for the benchmark's allreduce share).
    public private(set) var allreduceSeconds = 0.0
    public private(set) var steps = 0

    public init(communicator: Communicator) { self.communicator = communicator }

    /// Averages the gradients of `parameters` (those with `requiresGrad`) and `scalars` in place.
    public func average(_ parameters: [(String, Tensor)], scalars: inout [Double]) throws {
        let live = parameters.map(\.1).filter(\.requiresGrad)
        let n = live.reduce(0) { $0 + $1.count }
        if buffer.count != n + scalars.count { buffer = Tensor(zeros: [n + scalars.count]) }  // (n + scalars,)
        var at = 0
        for p in live {
            // A parameter no gradient reached contributes zeros.
            if let g = p.grad { buffer.copyElements(from: g, 0..<p.count, to: at) } else { buffer.fill(0, at..<(at + p.count)) }
            at += p.count
        }
        buffer.setElements(scalars.map { Float($0) }, at: n)
        let t0 = DispatchTime.now().uptimeNanoseconds
        try communicator.allreduceSum(buffer)
        allreduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let inv = 1 / Float(communicator.size)
        at = 0
        for p in live {
            if p.grad == nil { p.grad = Tensor(zeros: p.shape) }
            p.grad!.copyElements(from: buffer, at..<(at + p.count), scale: inv)
            at += p.count
        }
        for i in scalars.indices { scalars[i] = Double(buffer[flat: n + i] * inv) }
        steps += 1
    }
}
