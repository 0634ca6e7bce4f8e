import Foundation
import TestSupport
import Testing

@testable import TensorCore

/// The stage-1 fit step's kernels: `linear`'s bf16 training path (LinearBF16.swift) against the
/// composed matmul + add, and backward kernels that write a fresh gradient buffer instead of
/// zero-filling it (`Tensor.gradBufferForAdd`) against the zero-filled accumulation.
@Suite("fit-step kernels")
struct FitStepKernelTests {
    @Test("bf16 linear with a graph = bf16 matmul(x, wᵀ) + b and its gradients (1e-5), split and unsplit, rank 2 and 3")
    func linearBF16AgainstComposed() {
        for (shape, outF) in [([256, 64], 96), ([5, 7], 3), ([2, 40, 64], 48)] {
            let inF = shape.last!
            let x = randn(shape, seed: 11), w = randn([outF, inF], seed: 12, scale: 0.2), b = randn([outF], seed: 13)
            Precision.bf16.run {
                FusedOpSupport.expectSame("linear bf16 \(shape)→\(outF)", [x, w, b], rtol: 1e-5, atol: 1e-5) { t in
                    Tensor.linear(t[0], t[1], t[2])
                } composed: { t in
                    Tensor.matmul(t[0], t[1], transposeB: true) + t[2]
                }
            }
        }
    }

    @Test("bf16 linear: really rounded (differs from fp32), and without a bias")
    func linearBF16Rounds() {
        let x = randn([64, 40], seed: 21), w = randn([24, 40], seed: 22)
        let (y16, g16) = Precision.bf16.run { FusedOpSupport.outputAndGradients([x, w]) { Tensor.linear($0[0], $0[1]) } }
        let (y32, g32) = FusedOpSupport.outputAndGradients([x, w]) { Tensor.linear($0[0], $0[1]) }
        for (name, a, b) in [("y", y16, y32), ("dX", g16[0], g32[0]), ("dW", g16[1], g32[1])] {
            let err = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()!
            let scale = b.scalars.map { abs($0) }.max()!
            #expect(err > 1e-6 * scale, "\(name): bf16 equals fp32; was bf16 applied?")
            #expect(err < 4e-2 * scale, "\(name): bf16 off by \(err) (scale \(scale))")
        }
        Precision.bf16.run {
            FusedOpSupport.expectSame("linear bf16 no bias", [x, w], rtol: 1e-5, atol: 1e-5) {
                Tensor.linear($0[0], $0[1])
            } composed: {
                Tensor.matmul($0[0], $0[1], transposeB: true)
            }
        }
    }

    @Test("bf16 linear accumulates: x and w used twice get twice the gradient, on top of an existing one")
    func linearBF16Accumulates() {
        let x = randn([120, 32], seed: 31), w = randn([40, 32], seed: 32), b = randn([40], seed: 33)
        Precision.bf16.run {
            Tensor.linear(x, w, b).sum().backward()
            let once = [x.grad!.scalars, w.grad!.scalars, b.grad!.scalars]
            x.zeroGrad(); w.zeroGrad(); b.zeroGrad()
            (Tensor.linear(x, w, b) + Tensor.linear(x, w, b)).sum().backward()
            Tensor.linear(x, w, b).sum().backward()  // into the existing buffers (beta 1)
            for (k, g) in [x.grad!, w.grad!, b.grad!].enumerated() {
                expectClose(g.scalars, once[k].map { 3 * $0 }, rtol: 1e-5, atol: 1e-5, "parameter \(k)")
            }
        }
    }

    /// The gradients of `f`'s inputs after backward of sum(seed · f(x)): once into fresh
    /// buffers, once into zero-filled ones; the bit patterns must agree.
    func expectFreshEqualsZeroFilled(
        _ name: String, _ inputs: [Tensor], seed: Float = -1, sourceLocation: SourceLocation = #_sourceLocation,
        _ f: ([Tensor]) -> Tensor
    ) {
        func grads(preset: Bool) -> [[UInt32]] {
            let xs = inputs.map { Tensor($0.scalars, shape: $0.shape, requiresGrad: true) }
            if preset { for x in xs { x.grad = Tensor(zeros: x.shape) } }
            (f(xs).sum() * seed).backward()
            return xs.map { $0.grad!.scalars.map(\.bitPattern) }
        }
        let fresh = grads(preset: false), filled = grads(preset: true)
        for k in 0..<inputs.count {
            #expect(fresh[k] == filled[k], "\(name): input \(k) differs", sourceLocation: sourceLocation)
        }
    }

    @Test("fresh gradient buffers (0 + v) hold the bits of zero-filled ones after += (−0 included): mse, cosine, l1, relu, add, sub")
    func freshGradientBuffers() {
        // Equal entries in prediction and target make exact zeros, and the negative seed turns
        // them into −0 before the buffer write: 0 + (−0) is +0, as zero-fill plus += gives.
        let a = randn([6, 40], seed: 41), b = randn([6, 40], seed: 42)
        for i in stride(from: 0, to: a.count, by: 3) { b[flat: i] = a[flat: i] }
        expectFreshEqualsZeroFilled("mseLoss", [a, b]) { Tensor.mseLoss($0[0], $0[1]) }
        expectFreshEqualsZeroFilled("mseLoss, one input twice", [a]) { Tensor.mseLoss($0[0], $0[0] * 0.5) }
        expectFreshEqualsZeroFilled("cosineSimilarity", [a, b]) { Tensor.cosineSimilarity($0[0], $0[1]) }
        expectFreshEqualsZeroFilled("cosineSimilarity, inner axis", [a.reshape([2, 3, 40]), b.reshape([2, 3, 40])]) {
            Tensor.cosineSimilarity($0[0], $0[1], axis: 1)
        }
        expectFreshEqualsZeroFilled("cosineSimilarity, same tensor twice", [a]) { Tensor.cosineSimilarity($0[0], $0[0]) }
        expectFreshEqualsZeroFilled("l1Mean", [a - b]) { Tensor.l1Mean($0[0]) }
        expectFreshEqualsZeroFilled("relu", [a]) { $0[0].relu() }
        expectFreshEqualsZeroFilled("add", [a, b]) { $0[0] + $0[1] }
        expectFreshEqualsZeroFilled("sub", [a, b]) { $0[0] - $0[1] }
        expectFreshEqualsZeroFilled("add, broadcast", [a, randn([40], seed: 43)]) { $0[0] + $0[1] }
    }
}
