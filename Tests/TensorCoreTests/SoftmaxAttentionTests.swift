import Foundation
import TensorCore
import TestSupport
import Testing

@Suite("Softmax and attention")
struct SoftmaxAttentionTests {
    @Test("softmax rows sum to 1 and survive large logits")
    func softmaxForward() {
        let x = Tensor([1, 2, 3, 1000, 1001, 1002], shape: [2, 3])
        let y = x.softmax()
        let e1 = exp(Float(1)), e2 = exp(Float(2)), e3 = exp(Float(3))
        let expected = [e1, e2, e3].map { $0 / (e1 + e2 + e3) }
        // The second row is the first shifted by 999: stability makes them identical.
        expectClose(y.scalars, expected + expected, rtol: 1e-6, atol: 1e-7, "softmax")
    }

    @Test("softmax keeps full float precision across the exp range")
    func softmaxPrecision() {
        // Rows (x, 0): y₀ = eˣ/(eˣ + 1) ≈ eˣ for very negative x, so this checks the relative
        // accuracy of the vectorised exp from e⁻⁸⁶ (near the smallest normal float) to e⁰, for
        // row lengths that do and do not fill 8-lane vectors.
        let xs = stride(from: Float(-86), through: 20, by: 0.0123).map { $0 }
        let rows = Tensor(xs.flatMap { [$0, 0] }, shape: [xs.count, 2])
        let expected = xs.map { x -> Float in
            let e = exp(Double(x)); return Float(e / (e + 1))
        }
        let y = rows.softmax()
        expectClose((0..<xs.count).map { y[flat: 2 * $0] }, expected, rtol: 1e-6, atol: 0, "softmax (x, 0)")
        // Long rows with logits spread over ±60, against a Double reference. The shift x − max
        // is rounded in Float first, as the kernel must (that rounding alone costs up to
        // |x − max|·2⁻²⁴ relative, which is not the kernel's error).
        let wide = randn([3, 37], seed: 9, scale: 20, requiresGrad: false)
        var reference: [Float] = []
        for r in 0..<3 {
            let row = (0..<37).map { wide[flat: r * 37 + $0] }
            let m = row.max()!
            let e = row.map { exp(Double($0 - m)) }
            let s = e.reduce(0, +)
            reference += e.map { Float($0 / s) }
        }
        let got = wide.softmax().scalars
        expectClose(got, reference, rtol: 1e-6, atol: 1e-30, "wide softmax")
    }

    @Test("softmax gradient matches finite differences and the exp/sum/div composition")
    func softmaxGradients() {
        let x = randn([3, 4, 6], seed: 1)
        gradCheck("softmax", [x]) { $0[0].softmax() }
        FusedOpSupport.expectSame(
            "softmax", [x], rtol: 1e-4, atol: 1e-6,
            fused: { $0[0].softmax() },
            composed: { FusedOpSupport.composedSoftmax($0[0]) })
    }

    /// timm's attention from primitives: reshape (B, N, 3, H, D), permute to (3, B, H, N, D),
    /// softmax(q kᵀ · scale) v, then transpose(1, 2).reshape(B, N, C).
    static func composedAttention(_ qkv: Tensor, heads: Int) -> Tensor {
        let b = qkv.shape[0], n = qkv.shape[1], c = qkv.shape[2] / 3, d = c / heads
        let split = qkv.reshape([b, n, 3, heads, d]).permute([2, 0, 3, 1, 4])  // (3, B, H, N, D)
        let q = split.slice(axis: 0, 0..<1).reshape([b, heads, n, d])
        let k = split.slice(axis: 0, 1..<2).reshape([b, heads, n, d])
        let v = split.slice(axis: 0, 2..<3).reshape([b, heads, n, d])
        let scores = Tensor.matmul(q, k, transposeB: true) * (1 / Float(d).squareRoot())  // (B, H, N, N)
        let o = Tensor.matmul(FusedOpSupport.composedSoftmax(scores), v)  // (B, H, N, D)
        return o.transpose(1, 2).reshape([b, n, c])
    }

    @Test("attention gradient matches finite differences (B 2, N 5, C 8, 2 heads)")
    func attentionGradCheck() {
        let qkv = randn([2, 5, 24], seed: 2)
        gradCheck("multiHeadAttention", [qkv]) { Tensor.multiHeadAttention(qkv: $0[0], heads: 2) }
        let single = randn([1, 3, 12], seed: 3)
        gradCheck("multiHeadAttention 1 head", [single]) { Tensor.multiHeadAttention(qkv: $0[0], heads: 1) }
    }

    @Test(
        "fused attention equals the reshape/permute/matmul/softmax composition",
        arguments: [(2, 5, 8, 2), (2, 17, 32, 4), (3, 9, 24, 6)])
    func attentionVsComposed(b: Int, n: Int, c: Int, heads: Int) {
        let qkv = randn([b, n, 3 * c], seed: 4)
        FusedOpSupport.expectSame(
            "attention B\(b) N\(n) C\(c) H\(heads)", [qkv], rtol: 1e-4, atol: 1e-5,
            fused: { Tensor.multiHeadAttention(qkv: $0[0], heads: heads) },
            composed: { Self.composedAttention($0[0], heads: heads) })
    }

    @Test("no-grad inference gives the training-mode output and records nothing")
    func attentionInference() {
        let qkv = randn([2, 33, 72], seed: 5)
        let train = Tensor.multiHeadAttention(qkv: qkv, heads: 3)
        let infer = withNoGrad { Tensor.multiHeadAttention(qkv: qkv, heads: 3) }
        #expect(train.producingOp == "multiHeadAttention")
        #expect(!infer.requiresGrad && infer.producingOp == nil)
        #expect(infer.scalars == train.scalars)
        let frozen = randn([2, 33, 72], seed: 5, requiresGrad: false)
        let plain = Tensor.multiHeadAttention(qkv: frozen, heads: 3)
        #expect(!plain.requiresGrad)
        #expect(plain.scalars == train.scalars)
    }

    @Test("gradients accumulate into an existing qkv gradient")
    func attentionAccumulates() {
        let qkv = randn([1, 4, 12], seed: 6)
        Tensor.multiHeadAttention(qkv: qkv, heads: 2).sum().backward()
        let once = qkv.grad!.scalars
        Tensor.multiHeadAttention(qkv: qkv, heads: 2).sum().backward()
        expectClose(qkv.grad!.scalars, once.map { 2 * $0 }, rtol: 1e-6, atol: 1e-7, "accumulated")
    }
}
