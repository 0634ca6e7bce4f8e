import CKernels
import TestSupport
import Testing

@testable import TensorCore

/// The AVX-512 C row kernels (Sources/CKernels) against the Swift SIMD8 kernels they replace
/// on AVX-512 CPUs. Same formulas and constants; FMA contraction and 16-lane sums change the
/// last bits only, so the bound is a few ulp: 4e-6 relative.
@Suite("AVX-512 row kernels")
struct CPUKernelsTests {
    /// On a CPU without AVX-512 the C kernels must not be called; the Swift path is then the
    /// only one and the rest of the suite tests it, and these tests are reported as skipped.
    @Test(
        "softmax rows: AVX-512 = Swift SIMD8 within 4e-6 relative (lengths around the 16-lane tail, large logits)",
        .enabled(if: CPUKernels.avx512, "this CPU has no AVX-512: the C kernels are never called"))
    func softmaxRows() {
        for n in [1, 2, 15, 16, 17, 31, 33, 100, 1370] {
            for scale: Float in [1, 30] {
                let x = randn([n], seed: UInt64(n), scale: scale, requiresGrad: false)
                let a = Tensor(zeros: [n]), b = Tensor(zeros: [n])
                dvt_softmax_row_avx512(x.ptr, a.ptr, n)
                Tensor.softmaxRowSIMD8(x.ptr, b.ptr, n)
                let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) / max(abs($1), 1e-30) }.max()!
                #expect(worst <= 4e-6, "n \(n) scale \(scale): \(worst)")
                #expect(abs(a.scalars.reduce(0, +) - 1) <= 1e-5, "n \(n): sums to 1")
            }
        }
        // In place, as attention calls it.
        let x = randn([40], seed: 1, requiresGrad: false), want = Tensor(zeros: [40])
        Tensor.softmaxRowSIMD8(x.ptr, want.ptr, 40)
        dvt_softmax_row_avx512(x.ptr, x.ptr, 40)
        #expect(zip(x.scalars, want.scalars).allSatisfy { abs($0 - $1) <= 4e-6 * abs($1) })
    }

    /// GELU's far tail is the exception to 4e-6: at x ≈ −12 both kernels take exp of an argument
    /// near −73 (−z² − 1.27 + …), where one rounding of the argument (6e-8 relative) moves the
    /// result by 73 · 6e-8 ≈ 4.4e-6 relative, and FMA rounds z² differently; the bound there is
    /// 2e-5 (measured 7.8e-6).
    @Test(
        "GELU forward and backward: AVX-512 = Swift SIMD8 within 2e-5 relative, tails included",
        .enabled(if: CPUKernels.avx512, "this CPU has no AVX-512: the C kernels are never called"))
    func gelu() {
        // −12…12 covers both tails (Φ(−12) ≈ 2e-33) and the tail lanes (1001 = 62·16 + 9).
        let values = (0..<1001).map { Float($0) * 0.024 - 12 }
        let x = Tensor(values, shape: [1001], requiresGrad: true), y = Tensor(values, shape: [1001], requiresGrad: true)
        let g = randn([1001], seed: 5, requiresGrad: false)
        let fa = x.geluAVX512(), fb = y.geluSIMD8()
        func rel(_ a: [Float], _ b: [Float]) -> Float {
            zip(a, b).map { $1 == 0 ? abs($0) : abs($0 - $1) / abs($1) }.max()!
        }
        #expect(rel(fa.scalars, fb.scalars) <= 2e-5, "forward \(rel(fa.scalars, fb.scalars))")
        fa.backward(seed: g)
        fb.backward(seed: g)
        #expect(rel(x.grad!.scalars, y.grad!.scalars) <= 2e-5, "backward \(rel(x.grad!.scalars, y.grad!.scalars))")
        gradCheck("gelu (AVX-512)", [randn([3, 37], seed: 2)]) { $0[0].geluAVX512() }
    }
}
