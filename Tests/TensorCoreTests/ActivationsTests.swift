import Foundation
import Testing
import TensorCore
import TestSupport

@Suite("Activations")
struct ActivationsTests {
    @Test("gelu matches torch F.gelu values")
    func geluValues() {
        let x = Tensor([1.0, -0.5, 2.0, -3.0, 0.1, 0], shape: [6])
        // torch.nn.functional.gelu (exact erf form) at the same points.
        expectClose(x.gelu().scalars, [0.8413447, -0.15426877, 1.9544997, -0.0040496941, 0.053982784, 0],
                    rtol: 1e-6, atol: 1e-7, "gelu")
    }

    @Test("quickGelu equals x·sigmoid(1.702x)")
    func quickGeluValues() {
        let x = Tensor([1.0, -0.5, 2.0, -3.0, 0.1, 0], shape: [6])
        expectClose(x.quickGelu().scalars, [0.84579577, -0.14961156, 1.9356586, -0.018071310, 0.054244758, 0],
                    rtol: 1e-6, atol: 1e-7, "quickGelu")
        let composed = x * (x * 1.702).sigmoid()
        expectClose(x.quickGelu(), composed, rtol: 1e-6, atol: 1e-7, "quickGelu vs composition")
    }

    @Test("relu values and zero gradient at and below 0")
    func reluValues() {
        let x = Tensor([-2, -0.0, 0, 0.5, 3], shape: [5], requiresGrad: true)
        let y = x.relu()
        #expect(y.scalars == [0, 0, 0, 0.5, 3])
        y.sum().backward()
        #expect(x.grad!.scalars == [0, 0, 0, 1, 1])
    }

    @Test("activation gradients match finite differences")
    func gradients() {
        // Keep values away from relu's kink so central differences are exact.
        let raw = randn([4, 7], seed: 11, requiresGrad: false).scalars
        let x = Tensor(raw.map { $0 >= 0 ? $0 + 0.05 : $0 - 0.05 }, shape: [4, 7], requiresGrad: true)
        gradCheck("relu", [x]) { $0[0].relu() }
        gradCheck("gelu", [x]) { $0[0].gelu() }
        gradCheck("quickGelu", [x]) { $0[0].quickGelu() }
        let wide = randn([3, 5], seed: 12, scale: 4)
        gradCheck("gelu wide range", [wide]) { $0[0].gelu() }
        gradCheck("quickGelu wide range", [wide]) { $0[0].quickGelu() }
    }
}
