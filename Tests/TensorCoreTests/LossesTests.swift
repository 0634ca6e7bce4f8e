import TensorCore
import TestSupport
import Testing

@Suite("Losses")
struct LossesTests {
    static func composedCosine(_ a: Tensor, _ b: Tensor, axis: Int) -> Tensor {
        let dot = (a * b).sum(axes: [axis])
        return dot / (a.square().sum(axes: [axis]).sqrt() * b.square().sum(axes: [axis]).sqrt())
    }

    @Test("cosine similarity values")
    func cosineValues() {
        let a = Tensor([1, 0, 0, 3, 4, 0, 1, 2, 3], shape: [3, 3])
        let b = Tensor([0, 1, 0, 6, 8, 0, -1, -2, -3], shape: [3, 3])
        expectClose(Tensor.cosineSimilarity(a, b).scalars, [0, 1, -1], rtol: 1e-6, atol: 1e-6, "cos rows")
        // A zero vector hits the eps floor: similarity 0 and finite gradients, as torch.
        let z = Tensor(zeros: [1, 3], requiresGrad: true)
        let u = Tensor([1, 2, 2], shape: [1, 3], requiresGrad: true)
        let y = Tensor.cosineSimilarity(z, u)
        #expect(y.scalars == [0])
        y.sum().backward()
        #expect(z.grad!.scalars.allSatisfy(\.isFinite) && u.grad!.scalars.allSatisfy(\.isFinite))
        // ∂/∂z at z = 0 is u / (eps · ‖u‖), the clamped-norm formula.
        expectClose(z.grad!.scalars, [1, 2, 2].map { $0 / (1e-8 * 3) }, rtol: 1e-5, atol: 0, "clamped gradient")
    }

    @Test("cosine similarity gradients and composition, last and inner axes", arguments: [-1, 1, 0])
    func cosineGradients(axis: Int) {
        let a = randn([2, 3, 4], seed: 1)
        let b = randn([2, 3, 4], seed: 2)
        gradCheck("cosine axis \(axis)", [a, b]) { Tensor.cosineSimilarity($0[0], $0[1], axis: axis) }
        let out = Tensor.cosineSimilarity(a, b, axis: axis)
        var expectedShape = [2, 3, 4]
        expectedShape.remove(at: axis < 0 ? axis + 3 : axis)
        #expect(out.shape == expectedShape)
        FusedOpSupport.expectSame(
            "cosine axis \(axis)", [a, b], rtol: 1e-4, atol: 1e-6,
            fused: { Tensor.cosineSimilarity($0[0], $0[1], axis: axis) },
            composed: { Self.composedCosine($0[0], $0[1], axis: axis) })
    }

    @Test("mse loss value and gradients to both inputs")
    func mse() {
        let p = Tensor([1, 2, 3, 4], shape: [2, 2], requiresGrad: true)
        let t = Tensor([0, 2, 5, 3], shape: [2, 2], requiresGrad: true)
        let loss = Tensor.mseLoss(p, t)
        #expect(loss.shape == [])
        #expect(loss.item == Float(1 + 0 + 4 + 1) / 4)
        loss.backward()
        #expect(p.grad!.scalars == [0.5, 0, -1, 0.5])
        #expect(t.grad!.scalars == [-0.5, 0, 1, -0.5])
        let a = randn([3, 5], seed: 3), b = randn([3, 5], seed: 4)
        gradCheck("mseLoss", [a, b]) { Tensor.mseLoss($0[0], $0[1]) }
        FusedOpSupport.expectSame(
            "mseLoss", [a, b], fused: { Tensor.mseLoss($0[0], $0[1]) },
            composed: { ($0[0] - $0[1]).square().mean() })
    }

    @Test("mse and l1 on many blocks equal their compositions (parallel block sums)")
    func largeReductions() {
        let a = randn([37, 1001], seed: 6), b = randn([37, 1001], seed: 7)
        FusedOpSupport.expectSame(
            "large mseLoss", [a, b], rtol: 1e-5, atol: 1e-7,
            fused: { Tensor.mseLoss($0[0], $0[1]) },
            composed: { ($0[0] - $0[1]).square().mean() })
        FusedOpSupport.expectSame(
            "large l1Mean", [a], rtol: 1e-5, atol: 1e-7,
            fused: { Tensor.l1Mean($0[0]) }, composed: { $0[0].abs().mean() })
        let c = randn([300, 384], seed: 8), d = randn([300, 384], seed: 9)
        FusedOpSupport.expectSame(
            "wide cosine", [c, d], rtol: 1e-4, atol: 1e-7,
            fused: { Tensor.cosineSimilarity($0[0], $0[1]) },
            composed: { Self.composedCosine($0[0], $0[1], axis: -1) })
    }

    @Test("l1 mean value and gradient")
    func l1() {
        let x = Tensor([-2, 0, 1, 3], shape: [4], requiresGrad: true)
        let loss = Tensor.l1Mean(x)
        #expect(loss.item == 1.5)
        loss.backward()
        #expect(x.grad!.scalars == [-0.25, 0, 0.25, 0.25])
        let raw = randn([4, 6], seed: 5, requiresGrad: false).scalars
        let y = Tensor(raw.map { $0 >= 0 ? $0 + 0.05 : $0 - 0.05 }, shape: [4, 6], requiresGrad: true)
        gradCheck("l1Mean", [y]) { Tensor.l1Mean($0[0]) }
    }
}
