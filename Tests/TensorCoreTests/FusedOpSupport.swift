import TensorCore
import TestSupport
import Testing

/// Helpers for comparing a fused op with its composition from primitive ops.
enum FusedOpSupport {
    /// Runs `f` on fresh copies of `inputs` (all requiring grad), back-propagates
    /// sum(w · f(x)) with a seeded random w, and returns the output and every input gradient.
    static func outputAndGradients(
        _ inputs: [Tensor], seed: UInt64 = 99,
        _ f: ([Tensor]) -> Tensor
    ) -> (Tensor, [Tensor]) {
        let xs = inputs.map { Tensor($0.scalars, shape: $0.shape, requiresGrad: true) }
        let y = f(xs)
        let w = randn(y.shape, seed: seed, requiresGrad: false)
        (y * w).sum().backward()
        return (y, xs.map { $0.grad ?? Tensor(zeros: $0.shape) })
    }

    /// Expects two functions to agree in output and in all input gradients.
    static func expectSame(
        _ name: String, _ inputs: [Tensor], rtol: Float = 1e-4, atol: Float = 1e-5,
        sourceLocation: SourceLocation = #_sourceLocation,
        fused: ([Tensor]) -> Tensor, composed: ([Tensor]) -> Tensor
    ) {
        let (yf, gf) = outputAndGradients(inputs, fused)
        let (yc, gc) = outputAndGradients(inputs, composed)
        expectClose(yf, yc, rtol: rtol, atol: atol, "\(name) forward", sourceLocation: sourceLocation)
        for (k, (a, b)) in zip(gf, gc).enumerated() {
            expectClose(a, b, rtol: rtol, atol: atol, "\(name) gradient of input \(k)", sourceLocation: sourceLocation)
        }
    }

    /// Softmax over the last axis from exp/sum/div (no max shift: test inputs are small).
    static func composedSoftmax(_ x: Tensor) -> Tensor {
        let e = x.exp()
        return e / e.sum(axes: [-1], keepDims: true)
    }
}
