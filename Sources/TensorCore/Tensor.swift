import Foundation

#if os(Linux)
import Glibc
#endif

#if os(Linux)
/// glibc's mallopt (declared in <malloc.h>, which the Glibc module does not export).
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// Contiguous float32 storage. A class so that views (`reshape`, `detach`) can share it and so
/// that hot loops never trigger Array copy-on-write.
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    @usableFromInline let base: UnsafeMutablePointer<Float>
    /// Bumped by every in-place write through the mutating APIs (`assign`, `fill`, element
    /// writes, `withUnsafeMutableBufferPointer`, `noteModified`), so caches derived from the
    /// values (prepared matmul weights, MatMulPrepared.swift) know when they are stale.
    @usableFromInline var version: UInt64 = 0

    init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "negative element count \(count)")
        _ = TensorStorage.allocatorTuned
        self.count = count
        base = TensorStorage.allocateBuffer(max(count, 1))
        if zeroed {
            base.initialize(repeating: 0, count: max(count, 1))
        } else if TensorStorage.poisonUninitialized {
            // Debug builds fill "uninitialised" buffers with NaN, so a kernel that reads before
            // writing fails loudly in the tests instead of depending on what malloc returned.
            base.initialize(repeating: .nan, count: max(count, 1))
        }
    }

    deinit { base.deallocate() }

    /// Buffers from this size on are 2 MiB-aligned and asked to live on transparent huge pages.
    /// The big ones are the stage-1 tables (a 16-level 2^20 hash table, its gradient and Adam
    /// moments are 75 MiB each) and the per-view raw features, all read at random rows: with
    /// 4 KiB pages nearly every row costs a TLB miss on top of its cache miss. (glibc serves
    /// such sizes with their own mmap anyway, see `allocatorTuned`, so alignment costs
    /// address space, not memory.) Placement only: no value changes.
    static let hugePageThreshold = 32 << 20

    /// `count` floats; from `hugePageThreshold` bytes on, 2 MiB-aligned with MADV_HUGEPAGE (on
    /// Linux; the advice is a hint, ignored where THP is off). `deallocate()` frees either kind
    /// (both come from malloc's family).
    private static func allocateBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        #if os(Linux)
        let bytes = count * MemoryLayout<Float>.stride
        if bytes >= hugePageThreshold {
            let huge = 2 << 20
            let rounded = (bytes + huge - 1) / huge * huge
            var raw: UnsafeMutableRawPointer? = nil
            if posix_memalign(&raw, huge, rounded) == 0, let raw {
                _ = madvise(raw, rounded, MADV_HUGEPAGE)
                return raw.bindMemory(to: Float.self, capacity: count)
            }
        }
        #endif
        return .allocate(capacity: count)
    }

    #if DEBUG
    static let poisonUninitialized = ProcessInfo.processInfo.environment["DVT_NO_POISON"] == nil
    #else
    static let poisonUninitialized = ProcessInfo.processInfo.environment["DVT_POISON_UNINITIALIZED"] != nil
    #endif

    /// glibc serves blocks above M_MMAP_THRESHOLD with fresh mmaps and returns them on free, so
    /// every large activation of every step page-faults its whole buffer in again (thousands of
    /// faults per layer). Raising the threshold to its 32 MiB maximum and the trim threshold
    /// keeps freed activations in the heap for the next step to reuse.
    static let allocatorTuned: Void = {
        #if os(Linux)
        // <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (macros Swift does not import).
        _ = glibcMallopt(-3, 32 << 20)
        _ = glibcMallopt(-1, 512 << 20)
        #endif
    }()

    /// Returns the allocator's free memory to the system now (glibc `malloc_trim(0)`: every
    /// arena, free pages inside the heap as well as its top).
    static func trimHeap() {
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }
}

/// An n-dimensional float32 tensor with row-major contiguous storage, and a node in the
/// reverse-mode autodiff graph.
///
/// Forward ops record, for every output that needs a gradient, a `BackwardNode` holding its
/// parents and a closure that *accumulates* into the parents' `grad`. `backward()` sorts the
/// recorded graph topologically and runs the closures in reverse (the tape, replayed backwards).
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage
    /// Element offset into `storage`. Non-zero only for row views made by `rowView`.
    @usableFromInline let offset: Int
    public var requiresGrad: Bool
    /// Accumulated gradient, same shape as `self`. `nil` until a backward pass reaches it.
    public var grad: Tensor?
    /// Optional label, used in error messages and by optimisers.
    public var name: String?
    var node: BackwardNode?
    /// On gradient tensors written by sparse kernels (hash-grid backward): the rows touched
    /// since the last `zeroGrad`, so optimisers and zeroing can skip the rest of the table.
    package var touchedRows: TouchedRows?

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// A zero-filled tensor.
    public init(zeros shape: [Int], requiresGrad: Bool = false) {
        Tensor.checkShape(shape)
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
        offset = 0
        self.requiresGrad = requiresGrad
    }

    /// Copies `values` (row-major) into a new tensor.
    public init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        Tensor.checkShape(shape)
        let n = shape.reduce(1, *)
        precondition(values.count == n, "Tensor(values:shape:) got \(values.count) values for shape \(shape) (\(n) elements)")
        self.shape = shape
        let st = TensorStorage(count: n, zeroed: false)
        values.withUnsafeBufferPointer { src in
            if n > 0 { st.base.initialize(from: src.baseAddress!, count: n) }
        }
        storage = st
        offset = 0
        self.requiresGrad = requiresGrad
    }

    /// A tensor filled with one value.
    public convenience init(repeating value: Float, shape: [Int], requiresGrad: Bool = false) {
        self.init(zeros: shape, requiresGrad: requiresGrad)
        if value != 0 { storage.base.update(repeating: value, count: count) }
    }

    /// A view sharing storage: used by reshape/detach so no data moves.
    init(sharing storage: TensorStorage, offset: Int, shape: [Int], requiresGrad: Bool = false) {
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.requiresGrad = requiresGrad
    }

    /// A fresh uninitialised tensor for a kernel to fill completely.
    static func uninitialized(_ shape: [Int]) -> Tensor {
        Tensor(sharing: TensorStorage(count: shape.reduce(1, *), zeroed: false), offset: 0, shape: shape)
    }

    static func checkShape(_ shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "invalid shape \(shape): negative dimension")
    }

    /// A scalar (rank-0) tensor.
    public static func scalar(_ v: Float, requiresGrad: Bool = false) -> Tensor {
        Tensor([v], shape: [], requiresGrad: requiresGrad)
    }

    // MARK: Element access (for tests, tools and I/O; kernels use the pointer accessors)

    /// All elements, row-major.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.base + offset, count: count))
    }

    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, got shape \(shape)")
        return storage.base[offset]
    }

    public subscript(flat i: Int) -> Float {
        get { storage.base[offset + i] }
        set { storage.base[offset + i] = newValue; storage.version &+= 1 }
    }

    /// Read-only access to the elements. `internal`: only TensorCore's kernels see raw memory;
    /// code above it uses the typed API or a documented kernel extension point
    /// (KernelExtensionPoints.swift), and the compiler enforces that.
    @usableFromInline
    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base + offset, count: count))
    }

    @usableFromInline
    func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        storage.version &+= 1
        return try body(UnsafeMutableBufferPointer(start: storage.base + offset, count: count))
    }

    @usableFromInline var ptr: UnsafeMutablePointer<Float> { storage.base + offset }

    // MARK: Autodiff plumbing

    /// A view of the same data cut off from the graph (stop-gradient).
    public func detach() -> Tensor {
        Tensor(sharing: storage, offset: offset, shape: shape)
    }

    /// A deep copy with no graph history.
    public func copy() -> Tensor {
        let t = Tensor.uninitialized(shape)
        if count > 0 { t.ptr.update(from: ptr, count: count) }
        return t
    }

    /// Copies another tensor's values into this one in place (no graph). Shapes must hold the
    /// same number of elements.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        storage.version &+= 1
        if count > 0 { ptr.update(from: other.ptr, count: count) }
    }

    /// Sets every element to `value` in place (no graph).
    public func fill(_ value: Float) {
        storage.version &+= 1
        ptr.update(repeating: value, count: count)
    }

    /// Records that this tensor's values were changed in place by a kernel writing through its
    /// pointer (optimiser steps call it for every parameter they update), so that caches of
    /// values derived from it (prepared matmul weights) are rebuilt.
    public func noteModified() { storage.version &+= 1 }

    /// Zero-filled gradient buffer, created on first use. Backward closures add into it.
    func gradBuffer() -> UnsafeMutablePointer<Float> {
        if grad == nil { grad = Tensor(zeros: shape) }
        return grad!.ptr
    }

    /// The gradient buffer for a backward kernel that adds into every element exactly once:
    /// `fresh` when the buffer was created by this call and holds no values yet, in which case
    /// the kernel stores `0 + v` instead of reading and adding. `0 + v` has the bits that a
    /// zero-filled buffer plus `+= v` would hold (−0 included), so results do not change; the
    /// zero fill and the read of the fresh buffer are saved.
    func gradBufferForAdd() -> (pointer: UnsafeMutablePointer<Float>, fresh: Bool) {
        if let g = grad { return (g.ptr, false) }
        let g = Tensor.uninitialized(shape)
        grad = g
        return (g.ptr, true)
    }

    /// Drops the accumulated gradient. A gradient whose rows are tracked (hash tables) is kept
    /// allocated and only its touched rows are zeroed: re-zeroing a million-row table every
    /// step would cost more than the step itself.
    public func zeroGrad() {
        if let g = grad, let tracked = g.touchedRows, g.rank == 2 {
            let width = g.shape[1], p = g.ptr
            for r in tracked.rows { (p + Int(r) * width).update(repeating: 0, count: width) }
            tracked.clear()
            return
        }
        grad = nil
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
