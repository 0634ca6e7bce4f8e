import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

/// (H, W, C) → (C, H, W).
func hwcToCHW(_ t: Tensor) -> Tensor {
    let (h, w, c) = (t.shape[0], t.shape[1], t.shape[2])
    var out = [Float](repeating: 0, count: t.count)
    for y in 0..<h { for x in 0..<w { for k in 0..<c { out[(k * h + y) * w + x] = t[flat: (y * w + x) * c + k] } } }
    return Tensor(out, shape: [c, h, w])
}

@Suite("Resize")
struct ResizeTests {
    /// Properties of the fixture-independent behaviour; exactness against PIL and torch is
    /// checked by the image fixture suite.
    @Test func sameSizeIsIdentity() {
        let img = randomImage(width: 13, height: 9, seed: 1)
        #expect(img.resized(width: 13, height: 9) == img)
        let t = randn([3, 9, 13], seed: 2, requiresGrad: false)
        #expect(Resize.bicubicAntialiased(t, height: 9, width: 13).scalars == t.scalars)
    }

    @Test func constantImagesStayConstant() {
        let flat = RGBImage(width: 31, height: 17, pixels: (0..<(31 * 17)).flatMap { _ in [UInt8(200), 13, 255] })
        for (w, h) in [(7, 5), (64, 40), (31, 3), (100, 17)] {
            let r = flat.resized(width: w, height: h)
            #expect(r.width == w && r.height == h)
            for i in 0..<(w * h) { #expect(r.pixels[3 * i] == 200 && r.pixels[3 * i + 1] == 13 && r.pixels[3 * i + 2] == 255) }
            let t = Resize.bicubicAntialiased(Tensor(repeating: 0.7, shape: [2, 17, 31]), height: h, width: w)
            #expect(t.shape == [2, h, w])
            #expect(t.scalars.allSatisfy { abs($0 - 0.7) < 1e-6 })
        }
    }

    /// Resampling a linear ramp reproduces it away from the borders: weights sum to 1 and the
    /// cubic kernel reproduces linear functions (exactly at integer taps; the stretched,
    /// resampled kernel of a downscale only to ~0.003 pixel, hence the tolerance).
    @Test func linearRampIsPreservedInTheInterior() {
        let inW = 40, outW = 25
        var ramp = [Float](repeating: 0, count: inW)
        for x in 0..<inW { ramp[x] = Float(x) }
        let t = Resize.bicubicAntialiased(Tensor(ramp, shape: [1, 1, inW]), height: 1, width: outW)
        let scale = Float(inW) / Float(outW)
        for i in 4..<(outW - 4) {
            let center = (Float(i) + 0.5) * scale - 0.5  // sample position in input pixel units
            #expect(abs(t[flat: i] - center) < 0.01, "output \(i): \(t[flat: i]) vs \(center)")
        }
    }

    @Test func layoutsAndCropsAgree() throws {
        let chw = randn([3, 20, 30], seed: 5, requiresGrad: false)
        // Same data in HWC.
        var hwcValues = [Float](repeating: 0, count: chw.count)
        for c in 0..<3 { for y in 0..<20 { for x in 0..<30 { hwcValues[(y * 30 + x) * 3 + c] = chw[flat: (c * 20 + y) * 30 + x] } } }
        let hwc = Tensor(hwcValues, shape: [20, 30, 3])
        let a = Resize.bicubicAntialiased(chw, height: 11, width: 47, layout: .chw)
        let b = Resize.bicubicAntialiased(hwc, height: 11, width: 47, layout: .hwc)
        #expect(b.shape == [11, 47, 3])
        #expect(hwcToCHW(b).scalars == a.scalars)
        // A crop resized in place equals resizing the materialised crop.
        let (top, left, ch, cw) = (3, 7, 12, 19)
        var cropValues: [Float] = []
        for c in 0..<3 { for y in top..<(top + ch) { for x in left..<(left + cw) { cropValues.append(chw[flat: (c * 20 + y) * 30 + x]) } } }
        let crop = Tensor(cropValues, shape: [3, ch, cw])
        for (h, w) in [(8, 8), (24, 40), (12, 10)] {
            let direct = Resize.bicubicAntialiased(chw, height: h, width: w, crop: (top, left, ch, cw))
            #expect(direct.scalars == Resize.bicubicAntialiased(crop, height: h, width: w).scalars, "crop → \(h)x\(w)")
            let directHWC = Resize.bicubicAntialiased(hwc, height: h, width: w, layout: .hwc, crop: (top, left, ch, cw))
            #expect(hwcToCHW(directHWC).scalars == direct.scalars)
        }
    }

    /// The two references differ only in Pillow's 8-bit rounding (of the weights, the
    /// intermediate image and the output), so on the same uint8 input they agree to about one
    /// level (two half-level roundings plus fixed-point weights).
    @Test func pilAndTorchAgreeToRounding() throws {
        let img = testPattern(width: 90, height: 70, seed: 6)
        for (w, h) in [(45, 33), (128, 100), (90, 20)] {
            let pil = img.resized(width: w, height: h).tensor()
            let torch = Resize.bicubicAntialiased(img.tensor(), height: h, width: w)
            // Pillow clips to [0, 255]; torch does not.
            let clipped = torch.scalars.map { min(max($0, 0), 1) }
            let c = closeness(pil.scalars, clipped, rtol: 0, atol: 1.5 / 255)
            #expect(c.firstBad == nil, "\(w)x\(h): \(c)")
        }
    }

    @Test func normalisation() {
        let img = RGBImage(width: 2, height: 1, pixels: [0, 128, 255, 51, 102, 153])
        let t = img.normalizedTensor(mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2])
        #expect(t.shape == [3, 1, 2])
        let expected: [Float] = [
            (0 / 255 - 0.5) / 0.5, (51 / 255 - 0.5) / 0.5,
            (128 / 255 - 0.25) / 0.25, (102 / 255 - 0.25) / 0.25,
            (255 / 255) / 2, (153 / 255) / 2,
        ]
        expectClose(t.scalars, expected, rtol: 0, atol: 1e-6, "normalizedTensor")
        expectClose(
            normalizeChannels(img.tensor(), mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2]).scalars, expected,
            rtol: 0, atol: 1e-6, "normalizeChannels")
        #expect(img.tensor().scalars == [0, 0.2, 128 / 255, 0.4, 1, 0.6])
    }
}
