import COneDNN
import Foundation

// `linear` with weights prepared once: weights reordered once, where that pays.
//
// oneDNN 2.6's brgemm matmul takes plain-layout weights, but its kernels read them in a blocked
// layout, so every call copies B into its scratchpad first (per worker of the row split, so twice
// per product on 2 cores), and in bf16 the engine rounded every weight to bf16 before that
// (BFloat16.pack, 11% of a bf16 ViT-B/14 518² forward's samples). When no gradient will be
// recorded for the weight (frozen ViTs, `withNoGrad` features, inference of a trained block),
// the weight is instead reordered (and rounded, in bf16) once into the layout the primitive
// prefers (`format_tag::any`) and kept, and the bias is the primitive's bias argument rather
// than a prefill of the output plus a sum post-op.
//
// Invalidation: a prepared copy is keyed by the weight's storage (identity and element offset)
// and checked on every use against the storage's `version` (bumped by every mutating API:
// `assign`, `fill`, element writes, `withUnsafeMutableBufferPointer`, `noteModified()`, which
// optimisers call after a step) and a fingerprint of 64 sampled elements (a backstop for writes
// through raw pointers that forgot `noteModified()`). A stale copy is reordered again.
//
// Same arithmetic as the plain path: the kernel is the same and reads the same blocked values;
// bf16 rounding is round-to-nearest-even in both (tested against the plain path).

enum PreparedWeights {
    /// `DVT_WEIGHT_CACHE_MB`: the most memory prepared copies may take (default 4096 MiB; 0
    /// turns preparation off). Beyond it further weights run the plain path.
    static let budget: Int = {
        if let s = ProcessInfo.processInfo.environment["DVT_WEIGHT_CACHE_MB"], let mb = Int(s), mb >= 0 { return mb << 20 }
        return 4096 << 20
    }()

    /// One weight in one layout, freed when the slot drops it.
    final class Copy: @unchecked Sendable {
        let layout: dnnl_memory_desc_t
        let pointer: UnsafeMutableRawPointer
        let bytes: Int
        init(layout: dnnl_memory_desc_t, bytes: Int) {
            self.layout = layout
            self.bytes = bytes
            pointer = .allocate(byteCount: Swift.max(bytes, 64), alignment: 64)
        }
        deinit { pointer.deallocate() }
    }

    /// The prepared copies of one weight (one per layout asked for: the row split's block sizes
    /// may get different layouts, though in practice they share one).
    final class Slot {
        weak var storage: TensorStorage?
        var version: UInt64
        var fingerprint: UInt64
        var copies: [Copy] = []
        init(storage: TensorStorage, version: UInt64, fingerprint: UInt64) {
            self.storage = storage
            self.version = version
            self.fingerprint = fingerprint
        }
    }

    struct SlotKey: Hashable {
        var storage: ObjectIdentifier
        var offset: Int, rows: Int, cols: Int
        var bf16: Bool
    }

    nonisolated(unsafe) private static var slots: [SlotKey: Slot] = [:]
    nonisolated(unsafe) private static var bytesInUse = 0
    private static let lock = NSLock()

    /// Bytes held by prepared copies (for tests).
    static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return bytesInUse }

    /// Whether a current prepared copy of `w` exists (for tests).
    static func isPrepared(_ w: Tensor, bf16: Bool) -> Bool {
        let key = SlotKey(storage: ObjectIdentifier(w.storage), offset: w.offset, rows: w.shape[0], cols: w.shape[1], bf16: bf16)
        lock.lock()
        defer { lock.unlock() }
        guard let slot = slots[key], slot.storage === w.storage else { return false }
        return slot.version == w.storage.version && !slot.copies.isEmpty
    }

    /// Hash of 64 evenly spaced elements and the last one.
    static func fingerprint(_ p: UnsafePointer<Float>, _ count: Int) -> UInt64 {
        var h = FNV1a()
        let step = Swift.max(1, count / 64)
        var i = 0
        while i < count {
            h.combine(UInt64(p[i].bitPattern))
            i += step
        }
        if count > 0 { h.combine(UInt64(p[count - 1].bitPattern)) }
        return h.value
    }

    /// The weight w (Out, In) as op(B) = wᵀ (In, Out) in `layout`, reordered now if there is
    /// no current copy; nil when the budget is spent. The returned copy stays valid while the
    /// caller holds it, even if another thread replaces it.
    static func copy(of w: Tensor, layoutOf: OneDNN.Key, bf16: Bool) -> Copy? {
        let outF = w.shape[0], inF = w.shape[1]
        let key = SlotKey(storage: ObjectIdentifier(w.storage), offset: w.offset, rows: outF, cols: inF, bf16: bf16)
        let print = fingerprint(w.ptr, w.count)
        let version = w.storage.version
        var layout = OneDNN.entry(layoutOf).weights
        lock.lock()
        defer { lock.unlock() }
        if let slot = slots[key], slot.storage === w.storage {
            if slot.version == version && slot.fingerprint == print {
                if let hit = slot.copies.first(where: { c in withUnsafePointer(to: c.layout) { dnnl_memory_desc_equal($0, &layout) != 0 } }) {
                    return hit
                }
            } else {
                bytesInUse -= slot.copies.reduce(0) { $0 + $1.bytes }
                slot.copies = []
                slot.version = version
                slot.fingerprint = print
            }
        } else {
            pruneDeadSlots()
            slots[key] = Slot(storage: w.storage, version: version, fingerprint: print)
        }
        let bytes = dnnl_memory_desc_get_size(&layout)
        guard bytesInUse + bytes <= budget else { return nil }
        let made = Copy(layout: layout, bytes: bytes)
        // op(B) = wᵀ: element (i, j) of the (In, Out) operand is w[j·In + i].
        OneDNN.reorder(w.ptr, k: inF, n: outF, strideK: 1, strideN: inF, layoutOf: layoutOf, into: made.pointer)
        slots[key]!.copies.append(made)
        bytesInUse += bytes
        return made
    }

    /// `DVT_LINEAR_CHUNK`: rows per task of a split prepared product, the tasks taken by whichever
    /// worker is free (a tuning knob, docs/speed.md); unset, one block of equal height per
    /// worker (`evenRowBlocks`). Not covered by the bit-identity tests: primitives of other block heights may block K
    /// differently.
    static let linearChunk: Int? = {
        if let s = ProcessInfo.processInfo.environment["DVT_LINEAR_CHUNK"], let v = Int(s), v > 0 { return v }
        return nil
    }()

    /// Block boundaries of a split prepared product: the rows `BLAS.rowBlocks` would split,
    /// cut into `Parallel.threads` parts of equal height (±1) instead of multiples of
    /// `BLAS.rowBlock`. That granularity exists for OpenBLAS's split-exactness; oneDNN's brgemm
    /// computes every row with the same K blocking and order wherever it starts (the tests hold
    /// fp32 outputs bit for bit across thread counts), and at ViT-B/14 518² (1,370 rows) the
    /// 48-row rounding gave 672 and 698 rows, one core waiting 3.7% of every product.
    static func evenRowBlocks(_ rows: Int, _ n: Int, _ k: Int) -> [Int] {
        guard let split = BLAS.rowBlocks(rows, n, k, split: true) else { return [0, rows] }
        let parts = split.count - 1
        return (0...parts).map { $0 * rows / parts }
    }

    /// Frees every prepared copy (they are made again on next use). Stage 1 calls it between
    /// the ViT forwards and the fit, whose weights are being trained and never prepared, so the
    /// ViT's copies (165 MiB for ViT-B in bf16) do not sit beside the view features.
    static func releaseAll() {
        lock.lock()
        defer { lock.unlock() }
        slots = [:]
        bytesInUse = 0
    }

    /// Drops the slots of weights that no longer exist (called with the lock held).
    private static func pruneDeadSlots() {
        for (key, slot) in slots where slot.storage == nil {
            bytesInUse -= slot.copies.reduce(0) { $0 + $1.bytes }
            slots[key] = nil
        }
    }

    /// Whether `linear` may use a prepared copy of `w`: oneDNN products, a budget, and no
    /// gradient will be recorded for w (a weight being trained changes every step, and its
    /// backward products read the plain weight anyway), and not in a checkpoint's forward
    /// (which runs unrecorded but on weights being trained).
    static func applies(to w: Tensor) -> Bool {
        BLAS.backend == .onednn && budget > 0 && !(GradMode.enabled && w.requiresGrad) && !GradMode.checkpointForward
    }

    /// A branch's closing product in bf16 from bf16 rows: out = h + (x16·wᵀ + b)·γ with the
    /// residual `h` and layer scale `gamma` optional (their sum in the epilogue, as `linear` does
    /// it). False when oneDNN declines; the caller then runs its composed version.
    static func closingLinearBF16(
        _ x16: UnsafeMutablePointer<UInt16>, rows: Int, inF: Int, w: Tensor, b: Tensor?, into out: Tensor,
        residual h: Tensor?, scale gamma: Tensor?
    ) -> Bool {
        linear(
            x16, rows: rows, inF: inF, outF: w.shape[0], w: w, b: b, into: out.ptr, precision: .bf16, xBF16: true,
            residual: h.map { UnsafePointer($0.ptr) }, scale: gamma.map { UnsafePointer($0.ptr) })
    }

    /// y (rows, Out) = x (rows, In) · wᵀ + b (then GELU with `gelu`) through prepared weights,
    /// split by rows into one block per worker (`evenRowBlocks`); false (nothing written) when
    /// no copy could be prepared. x and y are fp32, except that in bf16 `xBF16` says x is already bf16 (the
    /// hidden of `mlpGELU`) and `yBF16` asks for y as bf16. With `residual` (rows, Out) fp32,
    /// y = residual + (x · wᵀ + b)·scale (`scale` (Out), or 1 when nil) in the product's
    /// epilogue, rounded as `Tensor.residual` rounds (y fp32).
    static func linear(
        _ x: UnsafeRawPointer, rows: Int, inF: Int, outF: Int, w: Tensor, b: Tensor?,
        into y: UnsafeMutableRawPointer, precision: Precision, gelu: Bool = false,
        xBF16: Bool = false, yBF16: Bool = false,
        residual: UnsafePointer<Float>? = nil, scale: UnsafePointer<Float>? = nil
    ) -> Bool {
        precondition(residual != nil || scale == nil, "PreparedWeights.linear: a scale without a residual")
        precondition(residual == nil || !yBF16, "PreparedWeights.linear: the residual sum is written in fp32")
        let bf16 = precision == .bf16
        var blocks = evenRowBlocks(rows, outF, inF)
        if let chunk = linearChunk, blocks.count > 2, rows > 2 * chunk {
            blocks = Array(Swift.stride(from: 0, to: rows, by: chunk)) + [rows]
        }
        // One primitive per distinct block height; their weight layouts, prepared up front so
        // the workers only read.
        var entries: [Int: (OneDNN.Entry, Copy)] = [:]
        for i in 0..<(blocks.count - 1) where blocks[i + 1] > blocks[i] {
            let m = blocks[i + 1] - blocks[i]
            if entries[m] != nil { continue }
            let key = OneDNN.Key(
                transA: false, transB: true, m: m, n: outF, k: inF, lda: inF, ldb: inF, ldc: outF,
                alpha: Float(1).bitPattern, beta: Float(0).bitPattern, bf16: bf16,
                preparedWeights: true, bias: b != nil, gelu: gelu, dstBF16: bf16 && yBF16,
                scaleColumns: scale != nil, residual: residual != nil)
            let e = OneDNN.entry(key)
            guard let c = copy(of: w, layoutOf: key, bf16: bf16) else { return false }
            entries[m] = (e, c)
        }
        let prepared = entries  // read-only from here on (the workers share it)
        let pb = b.map { UnsafePointer($0.ptr) }
        var a16: UnsafeMutablePointer<UInt16>?
        if bf16 && !xBF16 {
            a16 = BFloat16.allocatePadded(rows * inF)
            BFloat16.pack(x.assumingMemoryBound(to: Float.self), rows: rows, cols: inF, ld: inF, into: a16!, parallel: true)
        }
        defer { a16?.deallocate() }
        let a: UnsafeRawPointer = a16.map { UnsafeRawPointer($0) } ?? x
        let inBytes = bf16 ? 2 : 4, outBytes = bf16 && yBF16 ? 2 : 4
        func run(_ lo: Int, _ hi: Int) {
            OpenMP.singleThreaded()
            let (e, c) = prepared[hi - lo]!
            var binary: [UnsafePointer<Float>] = []
            if let scale { binary.append(scale) }
            if let residual { binary.append(residual + lo * outF) }
            OneDNN.execute(e, a + lo * inF * inBytes, c.pointer, pb, y + lo * outF * outBytes, binary: binary)
        }
        if blocks.count > 2 {
            Parallel.concurrentPerform(blocks.count - 1) { i in
                if blocks[i] < blocks[i + 1] { run(blocks[i], blocks[i + 1]) }
            }
        } else {
            run(0, rows)
        }
        withExtendedLifetime(prepared) {}
        return true
    }
}

extension Tensor {
    /// Frees the prepared (reordered, and in bf16 rounded) copies of frozen weights that
    /// `linear` keeps between calls (the next product through a weight prepares it again), then
    /// hands the allocator's free memory back to the system. The allocator is tuned to keep up
    /// to 512 MiB of freed memory for reuse (`TensorStorage.allocatorTuned`): right for a
    /// training loop, but after a phase whose temporaries will not come back (stage 1's ViT
    /// forwards before its fit) that memory would sit in the peak.
    public static func releaseCachedMemory() {
        PreparedWeights.releaseAll()
        TensorStorage.trimHeap()
    }
}
