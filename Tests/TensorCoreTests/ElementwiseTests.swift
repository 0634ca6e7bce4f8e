import TensorCore
import TestSupport
import Testing

@Suite("Elementwise and broadcasting")
struct ElementwiseTests {
    @Test("add/sub/mul/div gradients, same shapes and broadcasting")
    func binaryGradients() {
        let cases: [([Int], [Int])] = [([3, 4], [3, 4]), ([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([2, 1, 4], [1, 3, 1]), ([3, 4], [])]
        for (k, (sa, sb)) in cases.enumerated() {
            let a = randn(sa, seed: UInt64(10 + k))
            let b = randn(sb, seed: UInt64(20 + k))
            gradCheck("add \(sa)+\(sb)", [a, b]) { $0[0] + $0[1] }
            gradCheck("sub \(sa)-\(sb)", [a, b]) { $0[0] - $0[1] }
            gradCheck("mul \(sa)*\(sb)", [a, b]) { $0[0] * $0[1] }
            let d = Tensor(
                (randn(sb, seed: UInt64(30 + k), requiresGrad: false).scalars.map { $0 > 0 ? $0 + 1 : $0 - 1 }), shape: sb, requiresGrad: true)
            gradCheck("div \(sa)/\(sb)", [a, d]) { $0[0] / $0[1] }
        }
    }

    @Test("broadcast forward values")
    func broadcastValues() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = Tensor([10, 20, 30], shape: [3])
        #expect((a + b).scalars == [11, 22, 33, 14, 25, 36])
        let c = Tensor([100, 200], shape: [2, 1])
        #expect((a * c).scalars == [100, 200, 300, 800, 1000, 1200])
        #expect((a - 1).scalars == [0, 1, 2, 3, 4, 5])
    }

    @Test("unary ops gradients")
    func unaryGradients() {
        let x = randn([4, 5], seed: 3)
        let pos = Tensor(x.scalars.map { abs($0) + 0.5 }, shape: x.shape, requiresGrad: true)
        gradCheck("neg", [x]) { -$0[0] }
        gradCheck("exp", [x]) { $0[0].exp() }
        gradCheck("log", [pos]) { $0[0].log() }
        gradCheck("sqrt", [pos]) { $0[0].sqrt() }
        gradCheck("square", [x]) { $0[0].square() }
        gradCheck("abs", [pos]) { $0[0].abs() }
        gradCheck("sigmoid", [x]) { $0[0].sigmoid() }
        gradCheck("clampMin", [pos]) { $0[0].clampMin(1.0) }
    }

    @Test("gradients accumulate when a tensor is used twice")
    func accumulation() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = (x * x + x).sum()
        y.backward()
        #expect(x.grad!.scalars == [3, 5, 7])
        // A second backward adds to the existing gradient.
        (x * 2).sum().backward()
        #expect(x.grad!.scalars == [5, 7, 9])
    }

    @Test("detach stops gradients; no-grad records nothing; frozen parameters get none")
    func stopGradient() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let w = Tensor([3, 4], shape: [2], requiresGrad: true)
        ((x * w.detach()).sum()).backward()
        #expect(x.grad!.scalars == [3, 4])
        #expect(w.grad == nil)
        let z = withNoGrad { x * w }
        #expect(!z.requiresGrad)
        x.zeroGrad()
        w.requiresGrad = false
        (x * w).sum().backward()
        #expect(w.grad == nil)
        #expect(x.grad!.scalars == [3, 4])
    }
}
