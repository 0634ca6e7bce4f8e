import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Vision

@Suite("View sampler (RandomResizedCropFlip)")
struct ViewSamplerTests {
    @Test("crop boxes follow torchvision's rules; views and coordinates are seeded and consistent")
    func views() {
        var rng = RandomGenerator(seed: 1)
        let image = Tensor.uniform([3, 60, 80], 0, 1, rng: &rng)
        let sampler = ViewSampler(size: (28, 28), grid: (4, 4))
        var boxRng = RandomGenerator(seed: 2)
        for _ in 0..<200 {
            let (t, l, h, w) = sampler.cropBox(height: 60, width: 80, rng: &boxRng)
            #expect(t >= 0 && l >= 0 && t + h <= 60 && l + w <= 80)
            let frac = Double(h * w) / 4800
            #expect(frac > 0.08 && frac < 0.56, "area fraction \(frac)")  // 0.1...0.5 up to rounding
        }
        var a = RandomGenerator(seed: 3), b = RandomGenerator(seed: 3)
        let (v1, c1) = sampler.sample(image, count: 6, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], rng: &a)
        let (v2, c2) = sampler.sample(image, count: 6, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], rng: &b)
        #expect(v1.shape == [7, 3, 28, 28] && c1.shape == [7, 4, 4, 2])
        #expect(v1.scalars == v2.scalars && c1.scalars == c2.scalars)
        // Whole-image view: coordinates linspace(0, 1) in x and y.
        let last = Array(c1.scalars[(6 * 32)...])
        #expect(last[0] == 0 && last[1] == 0 && last[30] == 1 && last[31] == 1)
        // Every view's coordinates lie in [0, 1] and span a box; replaying the draws reproduces
        // each crop: resize of the box (mirrored when the x coordinates decrease).
        var replay = RandomGenerator(seed: 3)
        for v in 0..<6 {
            let (t, l, h, w) = sampler.cropBox(height: 60, width: 80, rng: &replay)
            let flip = replay.uniformDouble() < 0.5
            let cx = (0..<4).map { c1[flat: v * 32 + $0 * 2] }
            #expect(flip == (cx[0] > cx[3]))
            #expect(abs(cx.min()! - Float(l) / 80) < 1e-6 && abs(cx.max()! - Float(l + w) / 80) < 1e-6)
            #expect(abs(c1[flat: v * 32 + 1] - Float(t) / 60) < 1e-6)
            let crop = normalizeChannels(
                Resize.bicubicAntialiased(image, height: 28, width: 28, crop: (t, l, h, w)),
                mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
            let x = flip ? 27 : 0
            #expect(abs(v1[flat: v * 3 * 784 + 5 * 28 + x] - crop[flat: 5 * 28]) < 1e-5)
        }
    }
}

@Suite("View sampler: planned views rendered in batches")
struct ViewSamplerPlanTests {
    @Test("plan, then render in pieces, gives sample's views and coordinates bit for bit")
    func piecewise() {
        var rng = RandomGenerator(seed: 7)
        let image = Tensor.uniform([3, 50, 70], 0, 1, rng: &rng)
        var sampler = ViewSampler(size: (28, 28), grid: (4, 4))
        sampler.horizontalFlip = true
        let mean: [Float] = [0.4, 0.5, 0.6], std: [Float] = [0.2, 0.25, 0.3]
        var a = RandomGenerator(seed: 9), b = RandomGenerator(seed: 9)
        let (views, coords) = sampler.sample(image, count: 11, mean: mean, std: std, rng: &a)
        let plan = sampler.plan(count: 11, imageHeight: 50, imageWidth: 70, rng: &b)
        #expect(plan.count == 12 && plan.last == ViewSampler.View(top: 0, left: 0, height: 50, width: 70, flip: false))
        #expect(sampler.coordinates(plan, imageHeight: 50, imageWidth: 70).scalars == coords.scalars)
        let pieces = stride(from: 0, to: 12, by: 5).map { sampler.render(image, views: Array(plan[$0..<min(12, $0 + 5)]), mean: mean, std: std) }
        #expect(Tensor.concat(pieces, axis: 0).scalars == views.scalars)
    }
}
