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
            // Same products on the same (rounded) operands, in smaller calls: fp32 summation-order error only.
            #expect(errorOverRMS(infer, train) <= 1e-5, "N \(n) \(precision): inference vs training path")
            if precision == .fp32 {
                #expect(errorOverRMS(infer, composed) <= 1e-5, "N \(n): inference vs composed")
            } else {
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

    @Test("softmax row to bf16 (AVX-512) = fp32 softmax then rounding, incl. tails and -inf", arguments: [1, 15, 16, 17, 1370])
    func softmaxBF16(n: Int) {
        let x = randn([n], seed: UInt64(n), scale: 4, requiresGrad: false)
        if n > 3 { x[flat: 2] = -.infinity }
        let row = x.copy(), ref = x.copy()
        var got = [UInt16](repeating: 0, count: n), want = [UInt16](repeating: 0, count: n)
        got.withUnsafeMutableBufferPointer { Tensor.softmaxRowBF16(row.ptr, $0.baseAddress!, n) }
        Tensor.softmaxRow(ref.ptr, ref.ptr, n)
        want.withUnsafeMutableBufferPointer { BFloat16.pack(ref.ptr, rows: 1, cols: n, ld: n, into: $0.baseAddress!, parallel: false) }
        #expect(got == want)
    }
}
