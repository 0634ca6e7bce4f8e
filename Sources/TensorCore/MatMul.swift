import COpenBLAS
import Dispatch
import Foundation

// Matrix products through oneDNN's matmul primitive (OneDNN.swift), or cblas_sgemm as the
// reference backend. Transposes are flags/strides, never copies, and every backward product
// accumulates straight into the gradient buffer with beta = 1.

enum BLAS {
    /// Whose kernels run the products. `.onednn` (the default) needs no environment variable to
    /// reach AVX2/AVX-512/AMX kernels; `.openblas` is the reference the tests compare against
    /// (Debian's OpenBLAS 0.3.21 falls back to SSE3 `Prescott` kernels on CPUs it does not know
    /// unless OPENBLAS_CORETYPE is set).
    enum Backend: String { case onednn, openblas }

    /// Who parallelises the products. `.engine` (the default): the kernels run single-threaded
    /// and large products are split into row blocks across `Parallel.threads` Dispatch workers.
    /// `.openblas` (`DVT_GEMM=openblas-threads`): OpenBLAS kernels on OpenBLAS's own threads.
    ///
    /// Why the engine split: OpenBLAS's idle threads spin in `sched_yield` between calls, and on
    /// 2 cores they take the core our elementwise kernels and attention need (`perf record -g
    /// dvt bench denoiser`: ~18% of a stage-2 step's samples in sched_yield and the scheduler);
    /// libgomp's team under oneDNN spins the same way (see OneDNN.swift). The split also makes
    /// results independent of the thread count when block edges fall where the kernel's own
    /// blocking does (tested).
    enum Threading: String { case engine, openblas }

    /// `DVT_GEMM`: `onednn` (default), `openblas` (OpenBLAS kernels under the engine split), or
    /// `openblas-threads` (OpenBLAS kernels and threads, the engine's behaviour before oneDNN).
    nonisolated(unsafe) static var backend: Backend = {
        switch ProcessInfo.processInfo.environment["DVT_GEMM"] {
        case "openblas", "openblas-threads", "engine": return .openblas
        default: return .onednn
        }
    }()

    nonisolated(unsafe) static var threading: Threading =
        ProcessInfo.processInfo.environment["DVT_GEMM"] == "openblas-threads" ? .openblas : .engine

    /// OpenBLAS's own thread count for `Parallel.threads` engine workers.
    static func openBLASThreads(for workers: Int) -> Int32 {
        threading == .engine ? 1 : Int32(workers)
    }

    /// Products below this many multiply-adds are not worth a fork/join.
    static let splitThreshold = 1 << 20

    /// Row-block granularity of the split. OpenBLAS 0.3.21's Haswell sgemm gives the same bits
    /// for a row range computed alone as inside a larger call only when the range starts on a
    /// multiple of 12 (measured: splits at 156 or 1020 changed ~7% of elements, any multiple of
    /// 12 changed none); 48 also covers 16- and 24-row kernels. Column splits changed bits at
    /// every offset tried, so products are only split by rows (M ≥ 2 · rowBlock). On an AVX-512
    /// CPU OpenBLAS picks Cooperlake/SkylakeX kernels, which are not split-exact at any block
    /// (MatMulTests.splitInvariance holds the split to 1e-6 relative instead).
    static let rowBlock = 48

    /// Row-major C = alpha · op(A) · op(B) + beta · C, with op(A) (M, K) and op(B) (K, N).
    @inline(__always)
    static func gemm(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
        _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
        _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, split: Bool = true,
        backend: Backend = BLAS.backend, precision: Precision = .fp32
    ) {
        // `split: false` is for callers that already run products on several workers (attention).
        if m == 0 || n == 0 { return }
        if k == 0 {
            if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
            return
        }
        if precision == .bf16 {
            gemmBF16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, split: split, backend: backend)
            return
        }
        let didSplit = splitRows(m, n, k, split: split) { lo, hi in
            raw(transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc, backend: backend)
        }
        if !didSplit { raw(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, backend: backend) }
    }

    /// The engine's row split of one product: when it applies (engine threading, `split`, more
    /// than one worker, M ≥ 2 · rowBlock and a large enough product), runs `rows(lo, hi)` for
    /// each worker's block of C's rows (rows of op(A)) and returns true; otherwise returns false
    /// and the caller makes one unsplit call. Each boundary is the multiple of `rowBlock` nearest
    /// to an even share, so small M (e.g. 128 = 48 + 80) stays balanced.
    static func splitRows(_ m: Int, _ n: Int, _ k: Int, split: Bool, _ rows: (Int, Int) -> Void) -> Bool {
        guard let bounds = rowBlocks(m, n, k, split: split) else { return false }
        Parallel.concurrentPerform(bounds.count - 1) { w in
            let lo = bounds[w], hi = bounds[w + 1]
            if lo < hi { rows(lo, hi) }
        }
        return true
    }

    /// The block boundaries `splitRows` uses (workers + 1 values from 0 to m), or nil when the
    /// product is not split.
    static func rowBlocks(_ m: Int, _ n: Int, _ k: Int, split: Bool) -> [Int]? {
        let workers = Parallel.threads
        guard threading == .engine && split && workers > 1 && m >= 2 * rowBlock && m * n * k >= splitThreshold else { return nil }
        func bound(_ w: Int) -> Int {
            w == workers ? m : min(m, Int((Double(w * m) / Double(workers) / Double(rowBlock)).rounded()) * rowBlock)
        }
        return (0...workers).map(bound)
    }

    /// `gemm` with bf16 operands and fp32 accumulation (`Precision.bf16`). op(A) and op(B) are
    /// packed once into contiguous bf16 (before any row split, so B is converted once, not per
    /// worker). oneDNN multiplies them on its bf16 kernels; OpenBLAS gets the rounded values
    /// back as fp32, which is the same arithmetic up to summation order.
    static func gemmBF16(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
        _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
        _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, split: Bool,
        backend: Backend
    ) {
        let rowsA = transA ? k : m, colsA = transA ? m : k  // A as stored
        let rowsB = transB ? n : k, colsB = transB ? k : n  // B as stored
        let ha = BFloat16.allocatePadded(rowsA * colsA), hb = BFloat16.allocatePadded(rowsB * colsB)
        defer { ha.deallocate(); hb.deallocate() }
        BFloat16.pack(a, rows: rowsA, cols: colsA, ld: lda, into: ha, parallel: split)
        BFloat16.pack(b, rows: rowsB, cols: colsB, ld: ldb, into: hb, parallel: split)
        if backend != .onednn {
            let fa = UnsafeMutablePointer<Float>.allocate(capacity: rowsA * colsA)
            let fb = UnsafeMutablePointer<Float>.allocate(capacity: rowsB * colsB)
            defer { fa.deallocate(); fb.deallocate() }
            for i in 0..<(rowsA * colsA) { fa[i] = BFloat16.float(ha[i]) }
            for i in 0..<(rowsB * colsB) { fb[i] = BFloat16.float(hb[i]) }
            gemm(transA, transB, m, n, k, alpha, fa, colsA, fb, colsB, beta, c, ldc, split: split, backend: backend)
            return
        }
        gemmPackedBF16(transA, transB, m, n, k, alpha, ha, colsA, hb, colsB, beta, c, ldc, split: split)
    }

    @inline(__always)
    static func raw(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
        _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
        _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        backend: Backend = BLAS.backend
    ) {
        if backend == .onednn {
            OneDNN.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Tensor {
    /// Matrix product over the last two dimensions.
    ///
    /// `a` is (..., M, K), or (..., K, M) with `transposeA`; `b` is (..., K, N), or (..., N, K)
    /// with `transposeB`. `b` may be rank 2 and shared by every batch of `a`; otherwise the
    /// batch dimensions must match. Output (..., M, N).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank >= 2, got \(a.shape) and \(b.shape)")
        let am = a.shape[a.rank - 2], ak = a.shape[a.rank - 1]
        let bk = b.shape[b.rank - 2], bn = b.shape[b.rank - 1]
        let (m, k) = transposeA ? (ak, am) : (am, ak)
        let (k2, n) = transposeB ? (bn, bk) : (bk, bn)
        precondition(k == k2, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batchA = Array(a.shape.dropLast(2))
        let batchB = Array(b.shape.dropLast(2))
        precondition(batchB.isEmpty || batchA == batchB, "matmul: batch dimensions \(batchA) and \(batchB) differ")
        let batch = batchA.reduce(1, *)
        let shared = batchB.isEmpty
        let precision = Precision.current  // forward and backward products alike
        let out = Tensor.uninitialized(batchA + [m, n])  // (..., M, N)
        let pa = a.ptr, pb = b.ptr, pc = out.ptr
        let lda = ak, ldb = bn
        let strideA = am * ak, strideB = shared ? 0 : bk * bn, strideC = m * n
        if shared && !transposeA {
            // Fold the batch into M: one large sgemm instead of many small ones.
            BLAS.gemm(false, transposeB, batch * m, n, k, 1, pa, lda, pb, ldb, 0, pc, n, precision: precision)
        } else {
            for i in 0..<batch {
                BLAS.gemm(
                    transposeA, transposeB, m, n, k, 1, pa + i * strideA, lda, pb + i * strideB, ldb, 0, pc + i * strideC, n, precision: precision)
            }
        }
        return out.record("matmul", [a, b]) { g in
            let pg = g.ptr
            if a.requiresGrad {
                // dA = dC · op(B)ᵀ, stored transposed when A is (K, M).
                let ga = a.gradBuffer()
                if shared && !transposeA {
                    accumulateProduct(
                        transposedOut: false, false, !transposeB, batch * m, k, n, pg, n, pb, ldb, ga, lda, precision)
                } else {
                    for i in 0..<batch {
                        accumulateProduct(
                            transposedOut: transposeA, false, !transposeB, m, k, n,
                            pg + i * strideC, n, pb + i * strideB, ldb, ga + i * strideA, lda, precision)
                    }
                }
            }
            if b.requiresGrad {
                // dB = op(A)ᵀ · dC (over the folded batch when B is shared), stored transposed when B is (N, K).
                let gb = b.gradBuffer()
                if shared && !transposeA {
                    accumulateProduct(
                        transposedOut: transposeB, true, false, k, n, batch * m, pa, lda, pg, n, gb, ldb, precision)
                } else {
                    for i in 0..<batch {
                        accumulateProduct(
                            transposedOut: transposeB, !transposeA, false, k, n, m,
                            pa + i * strideA, lda, pg + i * strideC, n, gb + i * strideB, ldb, precision)
                    }
                }
            }
        }
    }

    /// out (rows, cols) += op(l) · op(r), where op transposes when its flag is set; with
    /// `transposedOut` the result is stored as its transpose, out (cols, rows) += op(r)ᵀ · op(l)ᵀ,
    /// which is how a gradient reaches an operand held transposed.
    @inline(__always)
    private static func accumulateProduct(
        transposedOut: Bool, _ tl: Bool, _ tr: Bool, _ rows: Int, _ cols: Int, _ inner: Int,
        _ l: UnsafeMutablePointer<Float>, _ ldl: Int, _ r: UnsafeMutablePointer<Float>, _ ldr: Int,
        _ out: UnsafeMutablePointer<Float>, _ ldo: Int, _ precision: Precision
    ) {
        if transposedOut {
            BLAS.gemm(!tr, !tl, cols, rows, inner, 1, r, ldr, l, ldl, 1, out, ldo, precision: precision)
        } else {
            BLAS.gemm(tl, tr, rows, cols, inner, 1, l, ldl, r, ldr, 1, out, ldo, precision: precision)
        }
    }

    /// torch.nn.functional.linear: x (..., In) · wᵀ + b, with w (Out, In) and b (Out).
    public static func linear(_ x: Tensor, _ w: Tensor, _ b: Tensor? = nil) -> Tensor {
        precondition(w.rank == 2, "linear: weight must be (Out, In), got \(w.shape)")
        let outF = w.shape[0], inF = w.shape[1]
        precondition(
            x.rank >= 1 && x.shape[x.rank - 1] == inF,
            "linear: input \(x.shape) does not end in \(inF) (weight \(w.shape))")
        if let b { precondition(b.shape == [outF], "linear: bias \(b.shape) should be [\(outF)]") }
        let rows = x.count / max(inF, 1)
        let precision = Precision.current  // forward and backward products alike
        if linearBF16Applies(x, w, b, precision: precision) {  // operands rounded once (LinearBF16.swift)
            return linearBF16(x, w, b, rows: rows, inF: inF, outF: outF)
        }
        let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [outF])  // (..., Out)
        let px = x.ptr, pw = w.ptr, py = out.ptr
        // No gradient for w: weights reordered (and rounded) once, MatMulPrepared.swift.
        let prepared =
            rows > 0 && PreparedWeights.applies(to: w)
            && PreparedWeights.linear(px, rows: rows, inF: inF, outF: outF, w: w, b: b, into: py, precision: precision)
        if !prepared {
            if let b {
                let pb = b.ptr
                for r in 0..<rows { (py + r * outF).update(from: pb, count: outF) }
            }
            BLAS.gemm(false, true, rows, outF, inF, 1, px, inF, pw, inF, b == nil ? 0 : 1, py, outF, precision: precision)
        }
        let parents = b.map { [x, w, $0] } ?? [x, w]
        return out.record("linear", parents) { g in
            let pg = g.ptr
            if x.requiresGrad {  // dX (rows, In) += dY · W
                BLAS.gemm(false, false, rows, inF, outF, 1, pg, outF, pw, inF, 1, x.gradBuffer(), inF, precision: precision)
            }
            if w.requiresGrad {  // dW (Out, In) += dYᵀ · X
                BLAS.gemm(true, false, outF, inF, rows, 1, pg, outF, px, inF, 1, w.gradBuffer(), inF, precision: precision)
            }
            if let b, b.requiresGrad {
                let gb = b.gradBuffer()
                for r in 0..<rows {
                    let row = pg + r * outF
                    for j in 0..<outF { gb[j] += row[j] }
                }
            }
        }
    }

    /// gelu(linear(x, w, b)), the first half of a ViT MLP. When nothing will be differentiated
    /// (no gradient recorded for x, w or b) and w can be prepared (MatMulPrepared.swift), the
    /// GELU is oneDNN's `eltwise_gelu_erf` post-op applied to each output tile as the product
    /// writes it, saving the separate GELU pass over the (rows, Out) hidden activations (and
    /// their allocation); oneDNN's erf is not TensorCore's Chebyshev fit, so the values differ
    /// from the composed version by float rounding (≤ 1e-6 relative, tested). Otherwise the
    /// composed, differentiable `linear(x, w, b).gelu()`.
    public static func linearGELU(_ x: Tensor, _ w: Tensor, _ b: Tensor? = nil) -> Tensor {
        let graph = GradMode.enabled && (x.requiresGrad || w.requiresGrad || b?.requiresGrad == true)
        guard !graph, w.rank == 2, x.rank >= 1, x.shape[x.rank - 1] == w.shape[1], PreparedWeights.applies(to: w) else {
            return linear(x, w, b).gelu()
        }
        if let b { precondition(b.shape == [w.shape[0]], "linearGELU: bias \(b.shape) should be [\(w.shape[0])]") }
        let outF = w.shape[0], inF = w.shape[1]
        let rows = x.count / max(inF, 1)
        let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [outF])  // (..., Out)
        if rows == 0 { return out }
        guard
            PreparedWeights.linear(
                x.ptr, rows: rows, inF: inF, outF: outF, w: w, b: b, into: out.ptr,
                precision: Precision.current, gelu: true)
        else { return linear(x, w, b).gelu() }
        return out
    }

    /// linear(gelu(linear(x, w1, b1)), w2, b2), a ViT MLP. At inference in bf16 with prepared
    /// weights, fc1 writes its GELU'd hidden (rows, H) straight as bf16 (oneDNN rounds to
    /// nearest even, as BFloat16.pack would) and fc2 reads it: no fp32 hidden, no pack of it
    /// (the largest activation of a block). Otherwise `linear(linearGELU(x, w1, b1), w2, b2)`.
    /// With `residual` h (the block's input, shape of the output) the result is
    /// `residual(h, mlp, scale:)`, fc2's epilogue adding it (`linearResidual`).
    public static func mlpGELU(
        _ x: Tensor, _ w1: Tensor, _ b1: Tensor?, _ w2: Tensor, _ b2: Tensor?, residual h: Tensor? = nil, scale gamma: Tensor? = nil
    ) -> Tensor {
        precondition(h != nil || gamma == nil, "mlpGELU: a scale without a residual")
        func composed() -> Tensor {
            let hiddenOut = linearGELU(x, w1, b1)
            guard let h else { return linear(hiddenOut, w2, b2) }
            return linearResidual(hiddenOut, w2, b2, residual: h, scale: gamma)
        }
        let params = [w1, w2] + [b1, b2, h, gamma].compactMap { $0 }
        let graph = GradMode.enabled && (x.requiresGrad || params.contains { $0.requiresGrad })
        let hidden = w1.shape[0], inF = w1.shape[1]
        guard !graph, Precision.current == .bf16, w1.rank == 2, w2.rank == 2, w2.shape[1] == hidden,
            x.rank >= 1, x.shape[x.rank - 1] == inF, PreparedWeights.applies(to: w1), PreparedWeights.applies(to: w2)
        else {
            return composed()
        }
        if let b1 { precondition(b1.shape == [hidden], "mlpGELU: bias \(b1.shape) should be [\(hidden)]") }
        if let b2 { precondition(b2.shape == [w2.shape[0]], "mlpGELU: bias \(b2.shape) should be [\(w2.shape[0])]") }
        let outF = w2.shape[0], rows = x.count / max(inF, 1)
        let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [outF])  // (..., Out)
        if let h { precondition(h.shape == out.shape, "mlpGELU: residual \(h.shape) should be \(out.shape)") }
        if let gamma { precondition(gamma.shape == [outF], "mlpGELU: scale \(gamma.shape) should be [\(outF)]") }
        if rows == 0 { return out }
        let h16 = BFloat16.allocatePadded(rows * hidden)  // (rows, H) bf16
        defer { h16.deallocate() }
        guard
            PreparedWeights.linear(
                x.ptr, rows: rows, inF: inF, outF: hidden, w: w1, b: b1, into: h16,
                precision: .bf16, gelu: true, yBF16: true),
            PreparedWeights.closingLinearBF16(h16, rows: rows, inF: hidden, w: w2, b: b2, into: out, residual: h, scale: gamma)
        else { return composed() }
        return out
    }
}
