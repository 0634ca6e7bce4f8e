import Foundation
import TestSupport
import Testing

@testable import TensorCore

/// oneDNN (the default backend) against OpenBLAS (the reference, `DVT_GEMM=openblas`).
@Suite("oneDNN matmul vs OpenBLAS")
struct OneDNNTests {
    /// Largest |x − y| / max(|y|, scale) over the outputs, where `scale` is the RMS of the
    /// reference: a relative error that does not blow up on the few entries near zero that
    /// cancellation produces in random products.
    func relativeError(_ x: [Float], _ y: [Float]) -> Float {
        let rms = (y.reduce(Float(0)) { $0 + $1 * $1 } / Float(max(y.count, 1))).squareRoot()
        return zip(x, y).reduce(Float(0)) { max($0, abs($1.0 - $1.1) / max(abs($1.1), rms, 1e-30)) }
    }

    /// Runs one gemm through each backend on the same inputs (C starts at the same random
    /// values, so beta = 1 checks the accumulation).
    func compare(
        _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, alpha: Float, beta: Float,
        padA: Int = 0, padC: Int = 0, seed: UInt64
    ) -> Float {
        let lda = (ta ? m : k) + padA, ldb = tb ? k : n, ldc = n + padC
        let a = randn([ta ? k : m, lda], seed: seed, requiresGrad: false)
        let b = randn([tb ? n : k, ldb], seed: seed + 1, requiresGrad: false)
        let c1 = randn([m, ldc], seed: seed + 2, requiresGrad: false), c2 = randn([m, ldc], seed: seed + 2, requiresGrad: false)
        OneDNN.gemm(ta, tb, m, n, k, alpha, a.ptr, lda, b.ptr, ldb, beta, c1.ptr, ldc)
        BLAS.raw(ta, tb, m, n, k, alpha, a.ptr, lda, b.ptr, ldb, beta, c2.ptr, ldc, backend: .openblas)
        // Only the (M, N) block may change: padding columns of C must keep their values.
        let s1 = c1.scalars, s2 = c2.scalars
        for i in 0..<m { for j in n..<ldc { #expect(s1[i * ldc + j] == s2[i * ldc + j], "padding of C overwritten") } }
        return relativeError(s1, s2)
    }

    @Test("sizes 1, 3, 17, 1000 in every dimension, both transposes, beta 0 and 1, ≤ 1e-5 relative")
    func randomShapes() {
        let sizes = [1, 3, 17, 1000]
        var seed: UInt64 = 10
        for m in sizes {
            for n in sizes {
                for k in sizes {
                    if m * n * k > 17 * 1000 * 1000 { continue }  // keeps the naive-free sweep fast; 1000³ below
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        for beta: Float in [0, 1] {
                            seed += 3
                            let err = compare(ta, tb, m, n, k, alpha: beta == 0 ? 1 : 0.5, beta: beta, seed: seed)
                            #expect(err <= 1e-5, "m \(m) n \(n) k \(k) ta \(ta) tb \(tb) beta \(beta): \(err)")
                        }
                    }
                }
            }
        }
        let err = compare(false, true, 1000, 1000, 1000, alpha: 1, beta: 1, seed: 99)
        #expect(err <= 1e-5, "1000³: \(err)")
    }

    @Test("strided operands (leading dimensions wider than the matrix), as attention reads q, k, v")
    func strided() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let err = compare(ta, tb, 17, 33, 64, alpha: 0.125, beta: 1, padA: 5, padC: 7, seed: 7)
            #expect(err <= 1e-5, "ta \(ta) tb \(tb): \(err)")
        }
    }

    @Test("Tensor.matmul forward and gradients (batched, shared B, transposes) agree across backends")
    func batchedAndGradients() async {
        // In a child process: the backend is process-wide, and tests run concurrently.
        await #expect(processExitsWith: .success) {
            var worst: Float = 0
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for shared in [false, true] {
                    func run(_ backend: BLAS.Backend) -> [[Float]] {
                        let saved = BLAS.backend
                        BLAS.backend = backend
                        defer { BLAS.backend = saved }
                        let a = randn(ta ? [3, 40, 17] : [3, 17, 40], seed: 1)
                        let b = randn(shared ? (tb ? [33, 40] : [40, 33]) : (tb ? [3, 33, 40] : [3, 40, 33]), seed: 2)
                        let y = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                        // Two uses of each input, so the second backward product accumulates (beta = 1).
                        let loss = (y * y).sum() + Tensor.matmul(a, b, transposeA: ta, transposeB: tb).sum()
                        loss.backward()
                        return [y.scalars, a.grad!.scalars, b.grad!.scalars]
                    }
                    let d = run(.onednn), o = run(.openblas)
                    for (i, name) in ["forward", "dA", "dB"].enumerated() {
                        let err = OneDNNTests().relativeError(d[i], o[i])
                        if err > 1e-5 { print("\(name) ta \(ta) tb \(tb) shared \(shared): \(err)") }
                        worst = max(worst, err)
                    }
                }
            }
            exit(worst <= 1e-5 ? 0 : 1)
        }
    }

    @Test("a primitive is created once per shape and layout, also under concurrent calls")
    func cacheOncePerKey() {
        let m = 23, n = 29, k = 31
        let a = randn([m, k], seed: 1, requiresGrad: false), b = randn([k, n], seed: 2, requiresGrad: false)
        let pa = a.ptr, pb = b.ptr
        let key = OneDNN.Key(
            transA: false, transB: false, m: m, n: n, k: k, lda: k, ldb: n, ldc: n,
            alpha: Float(0.375).bitPattern, beta: Float(0).bitPattern, bf16: false)
        let first = OneDNN.entry(key)
        let outs = (0..<8).map { _ in Tensor(zeros: [m, n]) }
        let pcs = outs.map { $0.ptr }
        Parallel.concurrentPerform(8) { i in  // concurrent callers (the unchecked-Sendable path)
            OneDNN.gemm(false, false, m, n, k, 0.375, pa, k, pb, n, 0, pcs[i], n)
        }
        #expect(OneDNN.entry(key) === first)
        for o in outs { #expect(o.scalars == outs[0].scalars) }
    }
}
