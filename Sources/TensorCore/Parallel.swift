import COpenBLAS
import Dispatch
import Foundation

/// Splits loop work across cores for kernels that BLAS isn't already parallelising.
///
/// Thread policy: `threads` is the scoped count (`withThreads`, a task-local, so it holds for the
/// code called inside the scope on that thread or task, and nowhere else) or else the process
/// default: the core count, `DVT_NUM_THREADS`, or what the executable set once at start-up with
/// `setDefaultThreads` (`--threads`). Library code never changes the default: it scopes.
public enum Parallel {
    /// The process default behind a lock (read by every kernel, set once by the executable).
    private final class Default: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Int
        init() {
            var n = max(1, ProcessInfo.processInfo.activeProcessorCount)
            if let s = ProcessInfo.processInfo.environment["DVT_NUM_THREADS"], let v = Int(s), v > 0 { n = v }
            // OpenBLAS reads OPENBLAS_NUM_THREADS itself; set it from our count (see BLAS.Threading).
            openblas_set_num_threads(BLAS.openBLASThreads(for: n))
            value = n
        }
        var current: Int { lock.lock(); defer { lock.unlock() }; return value }
        func set(_ n: Int) {
            lock.lock()
            value = n
            lock.unlock()
            openblas_set_num_threads(BLAS.openBLASThreads(for: n))
        }
    }
    private static let processDefault = Default()
    @TaskLocal private static var scoped: Int?

    /// Worker threads for engine kernels and sgemm blocks here: the innermost `withThreads`
    /// scope, else the process default.
    public static var threads: Int { scoped ?? processDefault.current }

    /// Sets the process default (the executable's `--threads`, once at start-up). Not for library
    /// code or tests: use `withThreads`.
    public static func setDefaultThreads(_ n: Int) {
        precondition(n >= 1, "thread count must be >= 1, got \(n)")
        processDefault.set(n)
    }

    /// Runs `body` with `n` worker threads for the kernels it calls on this thread or task
    /// (OpenBLAS's own count is process-wide and is not scoped: under the default engine split it
    /// is 1 anyway, see `BLAS.Threading`).
    public static func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        precondition(n >= 1, "thread count must be >= 1, got \(n)")
        return try $scoped.withValue(n, operation: body)
    }

    /// `body(i)` for every i in `0..<count`, by up to `workers` threads that each take the next
    /// index from a shared counter, with every kernel inside on one thread (`withThreads(1)`): for
    /// independent pieces of work too small for the kernels to split well (SRT's view batches).
    public static func mapConcurrently<T>(_ count: Int, workers: Int, _ body: (Int) -> T) -> [T] {
        let n = min(workers, count)
        if n <= 1 { return (0..<count).map(body) }
        var results = [T?](repeating: nil, count: count)
        let lock = NSLock()
        var next = 0
        results.withUnsafeMutableBufferPointer { slots in
            concurrentPerform(n) { _ in
                withThreads(1) {
                    while true {
                        lock.lock()
                        let i = next
                        next += 1
                        lock.unlock()
                        if i >= count { return }
                        slots[i] = body(i)  // each index is taken once: disjoint writes
                    }
                }
            }
        }
        return results.map { $0! }
    }

    /// `DispatchQueue.concurrentPerform` for the engine's kernels. Its closure must be
    /// `@Sendable`, which a kernel's body is not (it captures raw pointers into its tensors'
    /// storage); every kernel here has each iteration write a disjoint part of its output, which
    /// the compiler cannot see, so the body crosses over unchecked. TensorCore only: this is the
    /// one place the engine's threads are made.
    @usableFromInline
    static func concurrentPerform(_ iterations: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            let unchecked = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: iterations) { unchecked.value($0) }
        }
    }

    @usableFromInline
    struct UncheckedSendable<T>: @unchecked Sendable {
        @usableFromInline let value: T
        @usableFromInline init(_ value: T) { self.value = value }
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
        concurrentPerform(workers) { w in
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
        concurrentPerform(workers) { w in
            var i = w
            while i < count {
                body(i)
                i += workers
            }
        }
    }
}
