import TensorCore
import TestSupport
import Testing

@Suite("Layer normalisation")
struct NormalizationTests {
    /// layerNorm from primitives: mean, subtract, square, mean, sqrt, divide.
    static func composed(_ x: Tensor, _ w: Tensor?, _ b: Tensor?, eps: Float) -> Tensor {
        let centred = x - x.mean(axes: [-1], keepDims: true)
        let variance = centred.square().mean(axes: [-1], keepDims: true)
        var y = centred / (variance + eps).sqrt()
        if let w { y = y * w }
        if let b { y = y + b }
        return y
    }

    @Test("forward normalises each row: mean 0, variance 1/(1 + eps/σ²)")
    func forwardStatistics() {
        let x = randn([5, 32], seed: 1, scale: 3, requiresGrad: false) + 7
        let y = x.layerNorm(weight: nil, bias: nil, eps: 1e-5)
        let mean = y.mean(axes: [-1])
        let variance = y.square().mean(axes: [-1])
        expectClose(mean.scalars, [Float](repeating: 0, count: 5), rtol: 0, atol: 1e-5, "row means")
        expectClose(variance.scalars, [Float](repeating: 1, count: 5), rtol: 0, atol: 1e-4, "row variances")
    }

    @Test("gradients match finite differences, with and without weight and bias")
    func gradients() {
        let x = randn([3, 8], seed: 2)
        let w = randn([8], seed: 3)
        let b = randn([8], seed: 4)
        gradCheck("layerNorm w+b", [x, w, b]) { $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5) }
        gradCheck("layerNorm no affine", [x]) { $0[0].layerNorm(weight: nil, bias: nil, eps: 1e-5) }
        gradCheck("layerNorm weight only", [x, w]) { $0[0].layerNorm(weight: $0[1], bias: nil, eps: 1e-5) }
        gradCheck("layerNorm bias only", [x, b]) { $0[0].layerNorm(weight: nil, bias: $0[1], eps: 1e-5) }
        let x3 = randn([2, 3, 6], seed: 5)
        let w3 = randn([6], seed: 6)
        let b3 = randn([6], seed: 7)
        gradCheck("layerNorm rank 3", [x3, w3, b3]) { $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-6) }
    }

    @Test("fused equals the primitive composition (forward and all gradients)", arguments: [[3, 8], [2, 5, 16], [2, 64, 384]])
    func fusedVsComposed(shape: [Int]) {
        let c = shape.last!
        let x = randn(shape, seed: 8, scale: 2)
        let w = randn([c], seed: 9)
        let b = randn([c], seed: 10)
        FusedOpSupport.expectSame(
            "layerNorm \(shape)", [x, w, b], rtol: 1e-3, atol: 1e-4,
            fused: { $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-6) },
            composed: { Self.composed($0[0], $0[1], $0[2], eps: 1e-6) })
        FusedOpSupport.expectSame(
            "layerNorm no affine \(shape)", [x], rtol: 1e-3, atol: 1e-4,
            fused: { $0[0].layerNorm(weight: nil, bias: nil, eps: 1e-5) },
            composed: { Self.composed($0[0], nil, nil, eps: 1e-5) })
    }

    @Test("row counts that leave empty trailing backward blocks", arguments: [17, 33, 40, 50])
    func awkwardRowCounts(rows: Int) {
        // rows < 16·⌈rows/16⌉ − ⌈rows/16⌉ leaves the last of the 16 ceil-sized blocks empty
        // (40 rows → blocks of 3, blocks 14 and 15 hold none): they must be skipped, not trap.
        let x = randn([rows, 12], seed: 14)
        let w = randn([12], seed: 15)
        let b = randn([12], seed: 16)
        FusedOpSupport.expectSame(
            "layerNorm \(rows) rows", [x, w, b], rtol: 1e-3, atol: 1e-4,
            fused: { $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-6) },
            composed: { Self.composed($0[0], $0[1], $0[2], eps: 1e-6) })
    }

    @Test("a frozen weight gets no gradient while the input does")
    func frozenParameters() {
        let x = randn([4, 6], seed: 11)
        let w = randn([6], seed: 12, requiresGrad: false)
        let b = randn([6], seed: 13, requiresGrad: false)
        x.layerNorm(weight: w, bias: b, eps: 1e-6).square().sum().backward()
        #expect(w.grad == nil && b.grad == nil)
        #expect(x.grad != nil)
        let y = withNoGrad { x.layerNorm(weight: w, bias: b, eps: 1e-6) }
        #expect(!y.requiresGrad && y.producingOp == nil)
    }
}
