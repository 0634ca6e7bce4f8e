import Foundation
import TensorCore
import Testing

@Suite("Adam element kernel")
struct AdamKernelTests {
    /// `AdamKernel.dense` (the AVX-512 kernel on CPUs that have it) against the plain Swift loop,
    /// bit for bit: same operations in the same order, no FMA. A length with a 16-lane tail.
    @Test(
        "the vector update equals the Swift loop bit for bit (Adam with and without L2, AdamW)",
        arguments: [(Float(0), false), (Float(1e-2), false), (Float(0), true)])
    func vectorMatchesSwift(l2: Float, decoupled: Bool) {
        let n = 16 * 37 + 7
        var rng = RandomGenerator(seed: 11)
        func draw(_ lo: Float, _ hi: Float, zeroEvery: Int = 0) -> Tensor {
            // Exact zeros too where asked (untouched rows' gradients, first-step moments).
            let values = (0..<n).map { i in zeroEvery > 0 && i % zeroEvery == 0 ? 0 : lo + (hi - lo) * rng.uniform() }
            return Tensor(values, shape: [n])
        }
        let p = draw(-1, 1), g = draw(-1e-3, 1e-3, zeroEvery: 13)
        let m = draw(-1e-3, 1e-3), v = draw(0, 1e-6, zeroEvery: 13)
        let c = AdamKernel.Coefficients(
            oneMinusBeta1: 0.1, beta2: 0.99, oneMinusBeta2: 0.01, l2: decoupled ? 0 : l2,
            decay: decoupled ? 1 - 1e-4 : 1, eps: 1e-15)
        let terms = AdamKernel.biasTerms(step: 7, lr: 0.01, beta1: 0.9, beta2: 0.99)
        let (p2, m2, v2) = (p.copy(), m.copy(), v.copy())
        Parallel.withThreads(2) { AdamKernel.dense(p: p, grad: g, m: m, v: v, c: c, terms: terms, decoupled: decoupled) }
        AdamKernel.denseReference(p: p2, grad: g, m: m2, v: v2, c: c, terms: terms, decoupled: decoupled)
        #expect(p.scalars.map(\.bitPattern) == p2.scalars.map(\.bitPattern))
        #expect(m.scalars.map(\.bitPattern) == m2.scalars.map(\.bitPattern))
        #expect(v.scalars.map(\.bitPattern) == v2.scalars.map(\.bitPattern))
    }
}
