import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import DVT

/// A tiny random-weights ViT (depth 2, dim 32, patch 14) so SRT runs in milliseconds.
func tinyViT(seed: UInt64 = 3, patch: Int = 14) -> VisionTransformer {
    var cfg = ViTConfig(name: "tiny_patch\(patch)", patchSize: patch, embedDim: 32, depth: 2, heads: 2, imageSize: 4 * patch)
    cfg.layerScale = true
    return VisionTransformer(config: cfg, seed: seed)
}

func srtOptions(
    dx: Int = 2, dy: Int = 2, stride: Int? = nil, aggregate: SRTAggregate = .mean, uniform: Bool = false,
    batch: Int = 8
) -> SRT.Options {
    var o = SRT.Options()
    o.dx = dx; o.dy = dy; o.stride = stride; o.aggregate = aggregate; o.uniform = uniform; o.batchSize = batch
    o.layer = 1
    return o
}

/// The straightforward SRT of the official code, built from public pieces: translate the image,
/// forward one view at a time, upsample, translate back, sum, divide by the view count.
func naiveSRTPixelMean(_ model: VisionTransformer, _ image: Tensor, shifts: [(Int, Int)], layer: Int, stride: Int) -> Tensor {
    var acc: Tensor?
    for (i, j) in shifts {
        let view = ShiftEnsemble.translateImage(image, down: i, right: j).reshape([1] + image.shape)
        let f = model.features(view, layers: [layer], stride: stride)[layer]!.patch  // (1, Gh, Gw, C)
        let map = f.reshape(Array(f.shape.dropFirst()))
        let back = ShiftEnsemble.translateMap(ShiftEnsemble.upsampleNearest(map, factor: stride), down: -i, right: -j)
        acc = acc.map { $0 + back } ?? back
    }
    return acc! / Float(shifts.count)
}

@Suite struct SRTTests {
    let model = tinyViT()
    let image: Tensor = randn([3, 56, 56], seed: 11)

    @Test func shiftListFollowsTheOfficialWeighting() {
        let s = SRT.shifts(dx: 1, dy: 2, uniform: false)
        #expect(s.count == 1 + 5 * 3)
        #expect(s[0] == (0, 0) && s[1] == (-2, -1) && s.last! == (2, 1))
        #expect(s.filter { $0 == (0, 0) }.count == 2)
        let u = SRT.shifts(dx: 1, dy: 2, uniform: true)
        #expect(u.count == 15 && u.filter { $0 == (0, 0) }.count == 1)
    }

    @Test func resolutionsHaveTheirShapesAndTokenIsPooledPixel() throws {
        let srt = try SRT(model: model, options: srtOptions())
        let views = srt.viewFeatures(image)
        let token = try srt.ensemble(views, resolution: .token)
        let fine = try srt.ensemble(views, resolution: .fine(scaleFactor: 2))
        let pixel = try srt.ensemble(views, resolution: .pixel)
        #expect(token.shape == [4, 4, 32])
        #expect(fine.shape == [8, 8, 32])
        #expect(pixel.shape == [56, 56, 32])
        expectClose(token, ShiftEnsemble.avgPool(pixel, window: 14), rtol: 1e-5, atol: 1e-6, "token = avgpool14(pixel)")
        expectClose(fine, ShiftEnsemble.avgPool(pixel, window: 7), rtol: 1e-5, atol: 1e-6, "fine = avgpool7(pixel)")
        #expect(views.raw.shape == [4, 4, 32])
        #expect(throws: SRTError.self) { try srt.ensemble(views, resolution: .fine(scaleFactor: 3)) }
    }

    @Test func pixelPathMatchesTheNaiveOfficialRecipe() throws {
        let srt = try SRT(model: model, options: srtOptions(batch: 3))
        let ours = try srt.run(image, resolution: .pixel).output
        let naive = naiveSRTPixelMean(model, image, shifts: srt.shifts, layer: 1, stride: 14)
        expectClose(ours, naive, rtol: 1e-4, atol: 1e-5, "batched pixel mean vs one-view-at-a-time recipe")
    }

    @Test func fastVariantEqualsThePooledPixelMean() throws {
        for (dx, dy, uniform) in [(2, 2, false), (1, 3, true)] {
            let srt = try SRT(model: model, options: srtOptions(dx: dx, dy: dy, uniform: uniform))
            let views = srt.viewFeatures(image)
            for res in [SRTResolution.token, .fine(scaleFactor: 2), .fine(scaleFactor: 7)] {
                let slow = try srt.ensemble(views, resolution: res)
                let fast = try srt.ensemble(views, resolution: res, fast: true)
                expectClose(fast, slow, rtol: 1e-5, atol: 1e-5, "fast vs pixel path, dx \(dx) dy \(dy) \(res)")
            }
        }
    }

    /// Shifts as large as or larger than the patch: the fast weights must move whole tokens.
    /// In a child process: concurrent forwards switch the engine and OpenBLAS to one thread
    /// process-wide, which tests running alongside (in any target) must not feel.
    @Test func concurrentForwardsMatchSerialOnes() async {
        await #expect(processExitsWith: .success) {
            let threadsBefore = Parallel.threads
            var o = srtOptions(batch: 3)
            o.parallelViews = true
            let model = tinyViT(), image = randn([3, 56, 56], seed: 11)
            let parallel = try! SRT(model: model, options: o).viewFeatures(image)
            o.parallelViews = false
            let serial = try! SRT(model: model, options: o).viewFeatures(image)
            // Bit for bit: the engine's kernels give the same bits whatever the thread count.
            var differing = 0
            for i in -2...2 {
                for j in -2...2 {
                    differing += zip(parallel[down: i, right: j].scalars, serial[down: i, right: j].scalars).filter { $0 != $1 }.count
                }
            }
            exit(differing == 0 && Parallel.threads == threadsBefore ? 0 : 1)  // restored afterwards
        }
    }

    @Test func fastVariantHandlesShiftsOfAPatchOrMore() {
        var rng = RandomGenerator(seed: 5)
        let maps = (0..<4).map { _ in Tensor.normal([3, 5, 6], rng: &rng) }
        let shifts = [(0, 0), (4, -4), (-5, 9), (7, 3)]
        let views = zip(shifts, maps).map { (shift: $0.0, features: $0.1) }
        for window in [4, 2] {
            let fast = ShiftEnsemble.fastMean(views, stride: 4, window: window)
            let pixel = ShiftEnsemble.avgPool(ShiftEnsemble.pixelAggregate(views, stride: 4, median: false), window: window)
            expectClose(fast, pixel, rtol: 1e-5, atol: 1e-6, "window \(window)")
        }
    }

    @Test func noShiftsGiveThePlainFeatures() throws {
        let srt = try SRT(model: model, options: srtOptions(dx: 0, dy: 0))
        let plain = model.features(image.reshape([1, 3, 56, 56]), layers: [1])[1]!.patch.reshape([4, 4, 32])
        // Not bit-exact: the pixel path pools 196 equal values (a float sum), and a forward's
        // rounding depends on how BLAS splits it over threads (single-threaded inside SRT).
        for fast in [false, true] {
            expectClose(try srt.run(image, fast: fast).output, plain, rtol: 1e-5, atol: 1e-5, "dx = dy = 0, fast \(fast)")
        }
        let median = try SRT(model: model, options: srtOptions(dx: 0, dy: 0, aggregate: .median, uniform: true))
        expectClose(try median.run(image).output, plain, rtol: 1e-5, atol: 1e-5, "median of one view")
    }

    @Test func translateThenUntranslateKeepsTheInterior() {
        let map = randn([9, 11, 5], seed: 2)
        for (i, j) in [(2, -3), (-1, 4), (0, 0), (3, 3)] {
            let back = ShiftEnsemble.translateMap(ShiftEnsemble.translateMap(map, down: i, right: j), down: -i, right: -j)
            for y in 0..<9 {
                for x in 0..<11 {
                    // A pixel survives the round trip iff its moved position stayed on the map.
                    let yy = y + i, xx = x + j
                    let kept = yy >= 0 && yy < 9 && xx >= 0 && xx < 11
                    for c in 0..<5 {
                        let want = kept ? map[flat: (y * 11 + x) * 5 + c] : 0
                        #expect(back[flat: (y * 11 + x) * 5 + c] == want, "(\(i), \(j)) at (\(y), \(x))")
                    }
                }
            }
        }
        // Direction: content moves down by i and right by j.
        let one = Tensor(zeros: [4, 4, 1])
        one[flat: 1 * 4 + 1] = 1
        let moved = ShiftEnsemble.translateMap(one, down: 2, right: 1)
        #expect(moved[flat: 3 * 4 + 2] == 1 && moved.scalars.reduce(0, +) == 1)
        let img = Tensor(zeros: [1, 4, 4])
        img[flat: 0] = 1
        #expect(ShiftEnsemble.translateImage(img, down: 1, right: 2)[flat: 1 * 4 + 2] == 1)
    }

    @Test func medianRunsAndResistsAnOutlierView() throws {
        // Five views of a 2×2 token map, one of them with a huge value: the mean moves, the
        // median does not.
        let base = randn([2, 2, 3], seed: 4)
        let outlier = base.copy()
        outlier[flat: 0] = 1000
        let views = [
            (shift: (0, 0), features: base), (shift: (0, 0), features: base), (shift: (0, 0), features: outlier),
            (shift: (0, 0), features: base), (shift: (0, 0), features: base),
        ]
        let median = ShiftEnsemble.pixelAggregate(views, stride: 2, median: true)
        let mean = ShiftEnsemble.pixelAggregate(views, stride: 2, median: false)
        expectClose(ShiftEnsemble.avgPool(median, window: 2), base, rtol: 0, atol: 0, "median ignores the outlier view")
        #expect(abs(mean[flat: 0] - base[flat: 0]) > 100)
        // Lower median for an even count, as torch.median.
        var v: [Float] = [4, 1, 3, 2]
        #expect(ShiftEnsemble.lowerMedian(&v) == 2)
        // And on the real model: runs, right shape, differs from the mean.
        let srtMedian = try SRT(model: model, options: srtOptions(aggregate: .median))
        let srtMean = try SRT(model: model, options: srtOptions())
        let views2 = srtMean.viewFeatures(image)
        let a = try srtMedian.ensemble(views2), b = try srtMean.ensemble(views2)
        #expect(a.shape == b.shape)
        #expect(zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! > 1e-3)
        #expect(throws: SRTError.self) { try srtMedian.ensemble(views2, fast: true) }
    }

    @Test func strideBelowThePatchSizeRuns() throws {
        let srt = try SRT(model: model, options: srtOptions(dx: 1, dy: 1, stride: 7, batch: 4))
        let views = srt.viewFeatures(image)
        // (56 − 14) / 7 + 1 = 7 tokens per side, 7 pixels apart.
        #expect(views.raw.shape == [7, 7, 32])
        let pixel = try srt.ensemble(views, resolution: .pixel)
        #expect(pixel.shape == [49, 49, 32])
        let token = try srt.ensemble(views, resolution: .token)
        expectClose(token, try srt.ensemble(views, resolution: .token, fast: true), rtol: 1e-5, atol: 1e-5, "stride 7 fast")
        expectClose(token, ShiftEnsemble.avgPool(pixel, window: 7), rtol: 1e-5, atol: 1e-6, "stride 7 token = pooled pixel")
        let naive = naiveSRTPixelMean(model, image, shifts: srt.shifts, layer: 1, stride: 7)
        expectClose(pixel, naive, rtol: 1e-4, atol: 1e-5, "stride 7 vs naive recipe")
        #expect(throws: SRTError.self) { try SRT(model: model, options: srtOptions(stride: 15)) }
    }
}
