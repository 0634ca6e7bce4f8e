import Foundation
import TensorCore
import TestSupport
import Testing

@Suite("Activations")
struct ActivationsTests {
    @Test("gelu matches torch F.gelu values")
    func geluValues() {
        let x = Tensor([1.0, -0.5, 2.0, -3.0, 0.1, 0], shape: [6])
        // torch.nn.functional.gelu (exact erf form) at the same points.
        expectClose(
            x.gelu().scalars, [0.8413447, -0.15426877, 1.9544997, -0.0040496941, 0.053982784, 0],
            rtol: 1e-6, atol: 1e-7, "gelu")
    }

    @Test("gelu and its derivative stay within float precision of a Double reference on [−12, 12]")
    func geluDense() {
        // 2401 points (not a multiple of 8, so the vector tail is covered too).
        let xs = (0...2400).map { Float($0) / 100 - 12 }
        let x = Tensor(xs, shape: [xs.count], requiresGrad: true)
        let y = x.gelu()
        y.sum().backward()
        var value: [Float] = [], slope: [Float] = []
        for xf in xs {
            let v = Double(xf)
            let cdf = 0.5 * erfc(-v / 2.0.squareRoot())
            value.append(Float(v * cdf))
            slope.append(Float(cdf + v * exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()))
        }
        let got = y.scalars, gotSlope = x.grad!.scalars
        let core = xs.indices.filter { abs(xs[$0]) <= 4 }, tail = xs.indices.filter { abs(xs[$0]) > 4 }
        expectClose(core.map { got[$0] }, core.map { value[$0] }, rtol: 2e-6, atol: 0, "gelu on [−4, 4]")
        expectClose(core.map { gotSlope[$0] }, core.map { slope[$0] }, rtol: 2e-6, atol: 1e-7, "gelu' on [−4, 4]")
        // Far tails: Φ(x) ~ e^(−x²/2) inherits the float rounding of x² (relative |x|²·2⁻²⁴),
        // so allow ~1e-5 relative; torch's float gelu returns 0 there (1 + erf(x/√2) rounds to 0).
        expectClose(tail.map { got[$0] }, tail.map { value[$0] }, rtol: 4e-5, atol: 0, "gelu tails")
        expectClose(tail.map { gotSlope[$0] }, tail.map { slope[$0] }, rtol: 4e-5, atol: 0, "gelu' tails")
    }

    @Test("quickGelu equals x·sigmoid(1.702x)")
    func quickGeluValues() {
        let x = Tensor([1.0, -0.5, 2.0, -3.0, 0.1, 0], shape: [6])
        expectClose(
            x.quickGelu().scalars, [0.84579577, -0.14961156, 1.9356586, -0.018071310, 0.054244758, 0],
            rtol: 1e-6, atol: 1e-7, "quickGelu")
        let composed = x * (x * 1.702).sigmoid()
        expectClose(x.quickGelu(), composed, rtol: 1e-6, atol: 1e-7, "quickGelu vs composition")
    }

    @Test("geluTanh equals 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))")
    func geluTanhValues() {
        let x = Tensor([1.0, -0.5, 2.0, -3.0, 0.1, 0, 6, -6, 12, -12], shape: [10])
        // Reference values in double precision (Python math.tanh).
        let want: [Float] = [
            0.8411919906082768, -0.15428599017485606, 1.954597694087775, -0.0036373920817729943,
            0.053982751045435165, 0, 5.9999999999156035, -8.43964897967453e-11, 12, 0,
        ]
        expectClose(x.geluTanh().scalars, want, rtol: 1e-6, atol: 1e-9, "geluTanh")
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
        gradCheck("geluTanh", [x]) { $0[0].geluTanh() }
        let wide = randn([3, 5], seed: 12, scale: 4)
        gradCheck("gelu wide range", [wide]) { $0[0].gelu() }
        gradCheck("quickGelu wide range", [wide]) { $0[0].quickGelu() }
        gradCheck("geluTanh wide range", [wide]) { $0[0].geluTanh() }
    }
}
