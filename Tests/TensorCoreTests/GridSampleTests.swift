import TensorCore
import TestSupport
import Testing

@Suite("Grid sample")
struct GridSampleTests {
    /// A (3, 4, 2) map whose value at (y, x, c) is 100·c + 10·y + x, so any bilinear blend is
    /// easy to write down by hand.
    static let map: Tensor = {
        var v: [Float] = []
        for y in 0..<3 { for x in 0..<4 { for c in 0..<2 { v.append(Float(100 * c + 10 * y + x)) } } }
        return Tensor(v, shape: [3, 4, 2])
    }()

    @Test("corners hit pixels exactly; interior, border and outside points blend as torch")
    func forward() {
        // x ∈ [−1, 1] spans pixel columns 0…3 (step 2/3), y spans rows 0…2 (step 1).
        let coords = Tensor(
            [
                -1, -1,  // pixel (0, 0)
                1, 1,  // pixel (2, 3)
                1, -1,  // pixel (0, 3)
                -1, 1,  // pixel (2, 0)
                0, 0,  // ix 1.5, iy 1: halfway between (1, 1) and (1, 2)
                -1.0 / 3, 0.5,  // ix 1, iy 1.5: halfway between (1, 1) and (2, 1)
                4.0 / 3, 0,  // ix 3.5: half a pixel past the right border, half of (1, 3)
                0, -1.5,  // iy −0.5: half a pixel above the top, half of row 0 at ix 1.5
                2, 0,  // far outside: zero
                -3, 5,  // far outside: zero
            ], shape: [10, 2])
        let out = Tensor.gridSample(Self.map, coords)
        #expect(out.shape == [10, 2])
        func pixel(_ y: Float, _ x: Float) -> [Float] { [10 * y + x, 100 + 10 * y + x] }
        let expected: [[Float]] = [
            pixel(0, 0), pixel(2, 3), pixel(0, 3), pixel(2, 0),
            pixel(1, 1.5), pixel(1.5, 1),
            pixel(1, 3).map { $0 / 2 },
            pixel(0, 1.5).map { $0 / 2 },
            [0, 0], [0, 0],
        ]
        expectClose(out.scalars, expected.flatMap { $0 }, rtol: 1e-6, atol: 1e-5, "gridSample")
    }

    @Test("map gradient matches finite differences; coords get none")
    func gradients() {
        let map = randn([4, 5, 3], seed: 1)
        let coords = Tensor(
            [
                0.1, -0.3, 0.77, 0.5, -0.9, 0.95,  // inside
                -1, 0.2, 1, 1, 0.3, -1,  // on the border
                1.2, 0.1, -0.4, -1.3, 3, 3,  // outside (partly and fully)
                0.1, -0.3,  // repeated point: scatter must add twice
            ], shape: [10, 2], requiresGrad: true)
        gradCheck("gridSample", [map]) { Tensor.gridSample($0[0], coords) }
        coords.zeroGrad()
        Tensor.gridSample(map, coords).sum().backward()
        #expect(coords.grad == nil)
    }

    @Test("parallel backward equals a sequential scatter on a large map")
    func largeBackward() {
        let map = randn([9, 11, 96], seed: 2)
        var rng = RandomGenerator(seed: 3)
        let coords = Tensor.uniform([700, 2], -1.1, 1.1, rng: &rng)
        let out = Tensor.gridSample(map, coords)
        let g = randn(out.shape, seed: 4, requiresGrad: false)
        map.zeroGrad()
        out.backward(seed: g)
        // Reference: the same scatter, written out sequentially here.
        var expected = [Float](repeating: 0, count: map.count)
        for i in 0..<700 {
            let ix = (coords[flat: 2 * i] + 1) / 2 * 10, iy = (coords[flat: 2 * i + 1] + 1) / 2 * 8
            let x0 = Int(ix.rounded(.down)), y0 = Int(iy.rounded(.down))
            for (yy, wy) in [(y0, 1 - (iy - Float(y0))), (y0 + 1, iy - Float(y0))] {
                for (xx, wx) in [(x0, 1 - (ix - Float(x0))), (x0 + 1, ix - Float(x0))] where yy >= 0 && yy < 9 && xx >= 0 && xx < 11 {
                    for c in 0..<96 { expected[(yy * 11 + xx) * 96 + c] += wy * wx * g[flat: i * 96 + c] }
                }
            }
        }
        expectClose(map.grad!.scalars, expected, rtol: 1e-4, atol: 1e-4, "scatter")
    }
}

@Suite("Grid sample keeps its inputs alive")
struct GridSampleLifetimeTests {
    @Test("backward after the caller dropped its coordinates reads the right values")
    func coordsDroppedBeforeBackward() {
        var rng = RandomGenerator(seed: 1)
        let gout = Tensor.normal([64, 8], rng: &rng)
        func run() -> [Float] {
            var r = RandomGenerator(seed: 5)
            let map = Tensor.normal([6, 6, 8], rng: &r, requiresGrad: true)
            var y: Tensor
            do {
                let coords = Tensor.uniform([64, 2], -1, 1, rng: &r)  // released at the end of this scope
                y = Tensor.gridSample(map, coords)
            }
            // Churn the allocator so freed coordinate memory gets reused.
            for k in 0..<20 { _ = Tensor(repeating: Float(k), shape: [128]) }
            y.backward(seed: gout)
            return map.grad!.scalars
        }
        #expect(run() == run())
        var r = RandomGenerator(seed: 5)
        let map = Tensor.normal([6, 6, 8], rng: &r, requiresGrad: true)
        let coords = Tensor.uniform([64, 2], -1, 1, rng: &r)
        Tensor.gridSample(map, coords).backward(seed: gout)
        #expect(run() == map.grad!.scalars)
    }
}
