import COpenBLAS
import Dispatch
import Foundation

/// Splits loop work across cores for kernels that BLAS isn't already parallelising.
public enum Parallel {
    nonisolated(unsafe) private static var _threads: Int = {
        var n = max(1, ProcessInfo.processInfo.activeProcessorCount)
        if let s = ProcessInfo.processInfo.environment["DVT_NUM_THREADS"], let v = Int(s), v > 0 { n = v }
        // OpenBLAS reads OPENBLAS_NUM_THREADS itself; set it from our count (see BLAS.Threading).
        openblas_set_num_threads(BLAS.openBLASThreads(for: n))
        return n
    }()

    /// Worker threads for engine kernels and sgemm blocks. Defaults to the core count, or
    /// `DVT_NUM_THREADS` when set.
    public static var threads: Int {
        get { _threads }
        set {
            precondition(newValue >= 1, "thread count must be >= 1, got \(newValue)")
            _threads = newValue
            openblas_set_num_threads(BLAS.openBLASThreads(for: newValue))
        }
    }

    /// Runs `body` with OpenBLAS threaded by itself over `threads` cores, whatever the engine's
    /// sgemm threading (see `BLAS.Threading`); for benchmarks that time raw `cblas_sgemm` calls.
    /// The setting is process-wide: run nothing else concurrently.
    public static func withOpenBLASThreads<R>(_ body: () throws -> R) rethrows -> R {
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(BLAS.openBLASThreads(for: threads)) }
        return try body()
    }

    /// Calls `body` on disjoint sub-ranges of `0..<count` covering it exactly, in parallel
    /// when the work is big enough. `grain` is the smallest range worth a thread.
    @inlinable
    public static func forRanges(_ count: Int, grain: Int = 4096, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(threads, max(1, count / max(grain, 1)))
        if workers <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + workers - 1) / workers
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = w * chunk
            let hi = min(count, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(i)` for every i in `0..<count`, spread over the worker threads.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if threads <= 1 || count == 1 {
            for i in 0..<count { body(i) }
            return
        }
        let workers = min(threads, count)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < count {
                body(i)
                i += workers
            }
        }
    }
}
