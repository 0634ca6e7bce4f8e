import TensorCore
import TestSupport
import Testing

@Suite("Gradient checkpointing")
struct CheckpointTests {
    /// A small two-op segment with a parameter, so both the input and the parameter paths run.
    static func segment(_ w: Tensor) -> (Tensor) -> Tensor {
        { x in (Tensor.matmul(x, w).gelu() * x).sigmoid() }
    }

    @Test("checkpointed segment: gradient check, and the same gradients as the recorded one")
    func matchesPlain() {
        let x = randn([3, 4], seed: 1), w = randn([4, 4], seed: 2)
        gradCheck("checkpoint", [x, w]) { Tensor.checkpoint($0[0], parameters: [$0[1]], Self.segment($0[1])) }
        let r = randn([3, 4], seed: 3, requiresGrad: false)
        for t in [x, w] { t.zeroGrad() }
        (Self.segment(w)(x) * r).sum().backward()
        let (gx, gw) = (x.grad!, w.grad!)
        for t in [x, w] { t.zeroGrad() }
        let y = Tensor.checkpoint(x, parameters: [w], Self.segment(w))
        #expect(y.producingOp == "checkpoint")
        (y * r).sum().backward()
        expectClose(x.grad!, gx, rtol: 1e-6, atol: 1e-7, "input")
        expectClose(w.grad!, gw, rtol: 1e-6, atol: 1e-7, "parameter")
    }

    @Test("a frozen input still passes the parameter gradient; nothing trainable records nothing")
    func frozenInput() {
        let x = randn([2, 4], seed: 4, requiresGrad: false), w = randn([4, 4], seed: 5)
        gradCheck("checkpoint frozen input", [x, w]) { Tensor.checkpoint($0[0], parameters: [$0[1]], Self.segment($0[1])) }
        #expect(x.grad == nil)
        let frozen = randn([4, 4], seed: 6, requiresGrad: false)
        #expect(!Tensor.checkpoint(x, parameters: [frozen], Self.segment(frozen)).requiresGrad)
    }
}
