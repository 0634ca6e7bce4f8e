/// Kernel extension points: the only doors through which code above TensorCore reaches a
/// tensor's memory. They exist for C libraries that take a pointer and nothing else (cblas in
/// Bench's reference timings, MPI in Distributed); every caller is listed, with its reason, in
/// docs/architecture.md ("Kernel extension points") and in the boundary test's allow-list
/// (Tests/TensorCoreTests/EngineBoundaryTests.swift), so a new one is a reviewed decision.
/// Everything else uses the typed tensor API.
extension Tensor {
    /// The elements (row-major, `count` of them) for a C call that reads them. The pointer is
    /// valid only inside `body` and must not escape it.
    @inlinable
    public func withUnsafeKernelBuffer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer(body)
    }

    /// The elements for a C call that writes them in place (an MPI allreduce, a BLAS output).
    /// The pointer is valid only inside `body` and must not escape it.
    @inlinable
    public func withUnsafeMutableKernelBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer(body)
    }
}
