// `linear` in bf16 on a recorded graph (training): every operand rounded to bf16 once.
//
// Through `BLAS.gemm` each of a linear's three products (forward, dX, dW) packs both of its
// operands, so x, w and the output gradient are each rounded twice per step, into buffers
// allocated per call (`BFloat16.pack`, 6.6% of a bf16 stage-1 fit step, docs/speed.md). Here
// the forward packs x and w once and keeps what the backward reads (w for dX, x for dW), and
// the backward packs the output gradient once for both of its products. The packed values are
// the ones `BLAS.gemmBF16` would make (same rounding) and the products the same oneDNN kernels.
// Two passes are saved as well: the bias is the forward primitive's bias argument instead of a
// prefill of the output plus a sum post-op, and a gradient buffer made by this backward is
// written with beta 0 instead of being zero-filled and accumulated into with beta 1. Both add
// the same fp32 values; the results agree with the plain path to fp32 rounding (tested).
// Letters: R rows of x (all leading dimensions), In, Out the weight's (Out, In).

/// A (rows, cols) matrix rounded to bf16 (round to nearest even), contiguous, with
/// `BFloat16.padding` zeros after it; freed with the object.
final class BF16Matrix: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt16>
    let rows: Int, cols: Int

    /// Packs the (rows, cols) fp32 matrix at `src` (leading dimension `cols`), split over the
    /// workers when large.
    init(_ src: UnsafePointer<Float>, rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        pointer = BFloat16.allocatePadded(rows * cols)
        BFloat16.pack(src, rows: rows, cols: cols, ld: cols, into: pointer, parallel: true)
    }

    deinit { pointer.deallocate() }
}

extension BLAS {
    /// C = alpha · op(A) · op(B) + beta · C on operands already packed to bf16 (A stored with
    /// leading dimension `lda`, B with `ldb`, as `gemm` takes them), on oneDNN's bf16 kernels
    /// with the engine's row split. `gemmBF16` packs, then calls this.
    static func gemmPackedBF16(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
        _ alpha: Float, _ a: UnsafePointer<UInt16>, _ lda: Int,
        _ b: UnsafePointer<UInt16>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, split: Bool
    ) {
        let didSplit = splitRows(m, n, k, split: split) { lo, hi in
            OneDNN.gemm(
                transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * lda, lda,
                b, ldb, beta, c + lo * ldc, ldc, bf16: true)
        }
        if !didSplit { OneDNN.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bf16: true) }
    }
}

extension Tensor {
    /// y (R, Out) = x16 · w16ᵀ (+ bias) with the engine's row split. The bias is the
    /// primitive's bias argument, added to the fp32 sum as the plain path's prefilled output
    /// plus sum post-op adds it, without the prefill pass.
    private static func forwardBF16(
        _ x16: BF16Matrix, _ w16: BF16Matrix, _ bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
        rows: Int, inF: Int, outF: Int
    ) {
        if rows == 0 { return }
        let blocks = BLAS.rowBlocks(rows, outF, inF, split: true) ?? [0, rows]
        func run(_ lo: Int, _ hi: Int) {
            OpenMP.singleThreaded()
            let key = OneDNN.Key(
                transA: false, transB: true, m: hi - lo, n: outF, k: inF, lda: inF, ldb: inF, ldc: outF,
                alpha: Float(1).bitPattern, beta: Float(0).bitPattern, bf16: true, bias: bias != nil)
            OneDNN.execute(OneDNN.entry(key), x16.pointer + lo * inF, w16.pointer, bias, y + lo * outF)
        }
        if blocks.count > 2 {
            Parallel.concurrentPerform(blocks.count - 1) { i in
                if blocks[i] < blocks[i + 1] { run(blocks[i], blocks[i + 1]) }
            }
        } else {
            run(0, rows)
        }
    }

    /// Whether `linear` takes `linearBF16`: bf16 products on oneDNN, recording, with a weight
    /// being trained (a frozen weight keeps its prepared copy, MatMulPrepared.swift).
    static func linearBF16Applies(_ x: Tensor, _ w: Tensor, _ b: Tensor?, precision: Precision) -> Bool {
        precision == .bf16 && BLAS.backend == .onednn && GradMode.enabled && w.requiresGrad
    }

    /// y (R, Out) = x (R, In) · wᵀ + b with bf16 operands, recorded: `linear`'s bf16 path when a
    /// gradient is wanted. Same values as `linear` through `BLAS.gemm` (see the file comment).
    static func linearBF16(_ x: Tensor, _ w: Tensor, _ b: Tensor?, rows: Int, inF: Int, outF: Int) -> Tensor {
        let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [outF])  // (..., Out)
        let py = out.ptr
        let x16 = BF16Matrix(x.ptr, rows: rows, cols: inF)  // (R, In)
        let w16 = BF16Matrix(w.ptr, rows: outF, cols: inF)  // (Out, In)
        forwardBF16(x16, w16, b.map { UnsafePointer($0.ptr) }, into: py, rows: rows, inF: inF, outF: outF)
        // The backward reads w only for dX and x only for dW.
        let keptW = x.requiresGrad ? w16 : nil, keptX = w.requiresGrad ? x16 : nil
        let parents = b.map { [x, w, $0] } ?? [x, w]
        return out.record("linear", parents) { g in
            let pg = g.ptr
            if x.requiresGrad || w.requiresGrad {
                let g16 = BF16Matrix(pg, rows: rows, cols: outF)  // (R, Out)
                if let keptW {  // dX (R, In) += dY · W
                    let (gx, fresh) = x.gradBufferForAdd()
                    BLAS.gemmPackedBF16(
                        false, false, rows, inF, outF, 1, g16.pointer, outF, keptW.pointer, inF, fresh ? 0 : 1, gx, inF,
                        split: true)
                }
                if let keptX {  // dW (Out, In) += dYᵀ · X
                    let (gw, fresh) = w.gradBufferForAdd()
                    BLAS.gemmPackedBF16(
                        true, false, outF, inF, rows, 1, g16.pointer, outF, keptX.pointer, inF, fresh ? 0 : 1, gw, inF,
                        split: true)
                }
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
}
