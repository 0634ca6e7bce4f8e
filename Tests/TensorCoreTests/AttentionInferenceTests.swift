import CKernels
import Foundation
import TestSupport
import Testing

@testable import TensorCore

/// The blocked inference path of multiHeadAttention (AttentionInference.swift) against the
/// training path (which keeps P (B, H, N, N)) and the composed reshape/matmul/softmax version.
@Suite("Blocked inference attention")
struct AttentionInferenceTests {
    func errorOverRMS(_ x: [Float], _ y: [Float]) -> Float {
        let rms = (y.reduce(Float(0)) { $0 + $1 * $1 } / Float(max(y.count, 1))).squareRoot()
        return zip(x, y).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) } / max(rms, 1e-30)
    }

    @Test(
        "query blocks (N = 1, 64, 65, 150: one, exact, one-plus-remainder, several blocks) equal the training path and the composition, fp32 and bf16",
        arguments: [1, 64, 65, 150])
    func blockedEqualsUnblocked(n: Int) {
        let qkv = randn([2, n, 3 * 48], seed: UInt64(n))
        for precision in Precision.allCases {
            let (train, infer, composed) = precision.run {
                (
                    Tensor.multiHeadAttention(qkv: qkv, heads: 3).scalars,
                    withNoGrad { Tensor.multiHeadAttention(qkv: qkv, heads: 3) }.scalars,
                    withNoGrad { SoftmaxAttentionTests.composedAttention(qkv, heads: 3) }.scalars
                )
            }
            if precision == .fp32 {
                // Same products on the same operands, in smaller calls: fp32 summation-order error only.
                #expect(errorOverRMS(infer, train) <= 1e-5, "N \(n): inference vs training path")
                #expect(errorOverRMS(infer, composed) <= 1e-5, "N \(n): inference vs composed")
            } else if CPUKernels.avx512BF16 {
                // The inference softmax is the AVX512_BF16 kernel, whose probabilities are within
                // one bf16 ulp of the training path's (fp32 softmax, then rounded): where a
                // probability sits near a rounding boundary the two round apart (measured: 7e-4).
                #expect(errorOverRMS(infer, train) <= 4e-3, "N \(n) bf16: inference vs training path")
            } else {
                #expect(errorOverRMS(infer, train) <= 1e-5, "N \(n) bf16: inference vs training path")
            }
            if precision == .bf16 {
                // The composition rounds its own operands (q, k, P, v) the same way; its softmax
                // is a different kernel, so P's bf16 rounding can flip on ties: bf16-level bound.
                #expect(errorOverRMS(infer, composed) <= 4e-2, "N \(n) bf16: inference vs composed")
            }
        }
    }

    @Test(
        "K and V reordered once per head (oneDNN) = the generic per-block products, bit for bit, fp32 and bf16 (N = 1, 26, 64, 150, 1370)",
        arguments: [1, 26, 64, 150, 1370])
    func preparedEqualsGeneric(n: Int) {
        let d = 64, c3 = 3 * 2 * d  // two heads; one head's q, k, v read with leading dimension 3C
        let qkv = randn([n, c3], seed: UInt64(100 + n), requiresGrad: false)
        for precision in Precision.allCases {
            func run(_ prepared: Bool) -> [Float] {
                let out = Tensor(zeros: [n, 2 * d])
                let scratch = Tensor.AttentionScratch(n: n, d: d, bf16: precision == .bf16)
                let q = qkv.ptr + d  // head 1
                Tensor.attendBlocked(
                    q: q, k: q + 2 * d, v: q + 4 * d, ld: c3, out: out.ptr + d, ldo: 2 * d, n: n, d: d,
                    scale: 0.125, precision: precision, scratch: scratch, prepared: prepared)
                return out.scalars
            }
            let fast = run(true), generic = run(false)
            #expect(fast == generic, "N \(n) \(precision): max |diff| \(zip(fast, generic).map { abs($0 - $1) }.max() ?? 0)")
            // Head 0's columns stay untouched (zeros).
            #expect((0..<n).allSatisfy { i in (0..<d).allSatisfy { fast[i * 2 * d + $0] == 0 } }, "N \(n): wrote outside the head")
        }
    }

    @Test(
        "softmax row to bf16 (AVX-512 F kernel) = fp32 softmax then rounding, incl. tails and -inf",
        .enabled(if: CPUKernels.avx512, "this CPU has no AVX-512: the C kernel is never called"),
        arguments: [1, 15, 16, 17, 1370])
    func softmaxBF16(n: Int) {
        let x = randn([n], seed: UInt64(n), scale: 4, requiresGrad: false)
        if n > 3 { x[flat: 2] = -.infinity }
        let row = x.copy(), ref = x.copy()
        var got = [UInt16](repeating: 0, count: n), want = [UInt16](repeating: 0, count: n)
        got.withUnsafeMutableBufferPointer { dvt_softmax_row_bf16_avx512(row.ptr, $0.baseAddress!, n) }
        Tensor.softmaxRow(ref.ptr, ref.ptr, n)
        want.withUnsafeMutableBufferPointer { BFloat16.pack(ref.ptr, rows: 1, cols: n, ld: n, into: $0.baseAddress!, parallel: false) }
        #expect(got == want)
    }

    @Test(
        "softmax row to bf16 (AVX512_BF16 kernel) within one bf16 ulp of the exact softmax, incl. tails, -inf and scores far below the max",
        .enabled(if: CPUKernels.avx512BF16, "this CPU has no AVX512_BF16: the fast kernel is never called"),
        arguments: [1, 15, 16, 17, 31, 32, 33, 1370])
    func softmaxBF16Fast(n: Int) {
        for scale: Float in [4, 40] {
            let x = randn([n], seed: UInt64(n) + 7, scale: scale, requiresGrad: false)
            if n > 3 { x[flat: 2] = -.infinity }
            let scores = x.scalars
            let row = x.copy()
            var got = [UInt16](repeating: 0, count: n)
            got.withUnsafeMutableBufferPointer { Tensor.softmaxRowBF16(row.ptr, $0.baseAddress!, n) }
            // Exact softmax in Double, then the bf16 ulp of each value.
            let m = Double(scores.max()!)
            let e = scores.map { exp(Double($0) - m) }
            let sum = e.reduce(0, +)
            var worst = 0.0
            for i in 0..<n {
                let want = e[i] / sum, have = Double(BFloat16.float(got[i]))
                let ulp = want >= 1.17549435e-38 ? pow(2, (log2(want)).rounded(.down) - 7) : 1.17549435e-38
                worst = max(worst, abs(have - want) / ulp)
            }
            #expect(worst <= 1, "N \(n) scale \(scale): worst error \(worst) bf16 ulp")
            if n > 3 { #expect(got[2] == 0, "exp(-inf) is 0") }
        }
        let nan = Tensor([1, .nan, 2] + [Float](repeating: 0, count: 30), shape: [33])
        var out = [UInt16](repeating: 0, count: 33)
        out.withUnsafeMutableBufferPointer { Tensor.softmaxRowBF16(nan.ptr, $0.baseAddress!, 33) }
        #expect(out.allSatisfy { BFloat16.float($0).isNaN }, "a NaN score makes the row NaN, as in the fp32 kernel")
    }

    @Test(
        "the fast bf16 softmax's 2^y: relative error <= 1e-6 over the normal range, 0 at and below 2^-160",
        .enabled(if: CPUKernels.avx512BF16, "this CPU has no AVX512_BF16: the fast kernel is never called"))
    func exp2Accuracy() {
        var y = (0..<200_001).map { -126 + Float($0) * 126 / 200_000 }
        y += [-160, -1000, -.infinity]
        var out = [Float](repeating: 0, count: y.count)
        out.withUnsafeMutableBufferPointer { dvt_exp2_bf16softmax_avx512(y, $0.baseAddress!, y.count) }
        var worst = 0.0
        for i in 0..<200_001 { worst = max(worst, abs(Double(out[i]) / pow(2, Double(y[i])) - 1)) }
        #expect(worst <= 1e-6, "worst relative error \(worst)")
        #expect(out.suffix(3).allSatisfy { $0 == 0 })
    }
}
