import Testing
@testable import TensorCore
import TestSupport

/// The blocked inference path of multiHeadAttention (AttentionInference.swift) against the
/// training path (which keeps P (B, H, N, N)) and the composed reshape/matmul/softmax version.
@Suite("Blocked inference attention")
struct AttentionInferenceTests {
    func errorOverRMS(_ x: [Float], _ y: [Float]) -> Float {
        let rms = (y.reduce(Float(0)) { $0 + $1 * $1 } / Float(max(y.count, 1))).squareRoot()
        return zip(x, y).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) } / max(rms, 1e-30)
    }

    @Test("query blocks (N = 1, 64, 65, 150: one, exact, one-plus-remainder, several blocks) equal the training path and the composition, fp32 and bf16",
          arguments: [1, 64, 65, 150])
    func blockedEqualsUnblocked(n: Int) {
        let qkv = randn([2, n, 3 * 48], seed: UInt64(n))
        for precision in Precision.allCases {
            let (train, infer, composed) = precision.run {
                (Tensor.multiHeadAttention(qkv: qkv, heads: 3).scalars,
                 withNoGrad { Tensor.multiHeadAttention(qkv: qkv, heads: 3) }.scalars,
                 withNoGrad { SoftmaxAttentionTests.composedAttention(qkv, heads: 3) }.scalars)
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
}
