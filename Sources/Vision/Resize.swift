import Foundation
import TensorCore

/// Memory layout of an image tensor.
public enum ImageLayout: Sendable {
    /// (C, H, W), channels outermost, as torch.
    case chw
    /// (H, W, C), channels innermost, as PIL / numpy images.
    case hwc
}

/// Bicubic resizes that reproduce the two reference implementations the DVT pipeline uses.
///
/// Both are separable convolutions with Keys' cubic kernel at a = −0.5 whose support is
/// widened by the shrink factor when downscaling (antialiasing), evaluated as in Pillow's
/// Resample.c: for output index i of a dimension resized from `inSize` to `outSize`,
/// scale = inSize / outSize, f = max(scale, 1), support = 2·f, center = (i + 0.5)·scale,
/// taps x ∈ [trunc(center − support + 0.5) ∨ 0, trunc(center + support + 0.5) ∧ inSize),
/// weight(x) = k((x − center + 0.5) / f), weights normalised to sum 1; width first, then height.
///
/// - `pilBicubic`: Pillow's `Image.resize(size, BICUBIC)` on 8-bit RGB. Weights in double,
///   converted to 22-bit fixed point; each pass rounds and clips to uint8 (so the intermediate
///   image is 8-bit too).
/// - `bicubicAntialiased`: torch `F.interpolate(mode="bicubic", align_corners=False,
///   antialias=True)` on float tensors (ATen's separable "aa" CPU kernel, which follows Pillow's
///   rule above with the same a = −0.5, but computes weights and sums in float32 and never rounds
///   or clips). torch's antialias=False bicubic (a = −0.75, a fixed 4-tap stencil) is
///   `bicubicTorch`, the position-embedding resampling of most transformers models.
public enum Resize {
    /// Keys' cubic convolution kernel with a = −0.5 (Pillow's bicubic_filter; ATen's aa_filter).
    @inline(__always)
    static func cubic(_ x: Double) -> Double {
        let a = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Float32 evaluation of the same kernel, in the operation order ATen uses
    /// (cubic_convolution1 / cubic_convolution2).
    @inline(__always)
    static func cubicF(_ x: Float) -> Float {
        let a: Float = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return 0
    }

    /// Taps of one output position: first input index and weights.
    struct Taps {
        var start: [Int]
        var count: [Int]
        /// Row-major (outSize, maxTaps) weights.
        var weights: [Double]
        var maxTaps: Int
    }

    /// Pillow's resampling filters (Resample.c): kernel and support radius.
    public enum PilFilter: Sendable {
        case bicubic, bilinear
        var support: Double { self == .bicubic ? 2 : 1 }
        @inline(__always) func weight(_ x: Double) -> Double {
            switch self {
            case .bicubic: return Resize.cubic(x)
            case .bilinear: let a = abs(x); return a < 1 ? 1 - a : 0  // Pillow's bilinear_filter (triangle)
            }
        }
    }

    /// Pillow's precompute_coeffs (double precision).
    static func pilTaps(inSize: Int, outSize: Int, filter: PilFilter = .bicubic) -> Taps {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale  // widened when shrinking (antialiasing)
        let maxTaps = Int(support.rounded(.up)) * 2 + 1
        var taps = Taps(start: [], count: [], weights: [Double](repeating: 0, count: outSize * maxTaps), maxTaps: maxTaps)
        let ss = 1 / filterScale
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                taps.weights[i * maxTaps + x] = w
                total += w
            }
            if total != 0 { for x in 0..<xmax { taps.weights[i * maxTaps + x] /= total } }
            taps.start.append(xmin)
            taps.count.append(max(xmax, 0))
        }
        return taps
    }

    /// Pillow's fixed-point precision for 8-bit resampling: 32 − 8 − 2 bits (Resample.c).
    static let pilPrecisionBits = 22

    /// Pillow's normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point.
    static func pilFixedPoint(_ taps: Taps) -> [Int32] {
        let one = Double(1 << pilPrecisionBits)
        return taps.weights.map { w in Int32(w < 0 ? (-0.5 + w * one) : (0.5 + w * one)) }
    }

    /// One Pillow 8-bit pass over interleaved uint8 data along one axis (the loop is
    /// TensorCore's `Resample.fixedPointPass`): `lines` independent lines, each with `inSize`
    /// samples at stride `srcSampleStride` (elements), lines `srcLineStride` apart, `channels`
    /// interleaved channels per sample; the output has `outSize` samples per line.
    static func pilPass(
        _ src: [UInt8], outCount: Int, lines: Int, inSize: Int, outSize: Int,
        srcSampleStride: Int, srcLineStride: Int, dstSampleStride: Int, dstLineStride: Int, channels: Int,
        filter: PilFilter = .bicubic
    ) -> [UInt8] {
        let taps = pilTaps(inSize: inSize, outSize: outSize, filter: filter)
        let k = ResampleTaps(start: taps.start, count: taps.count, weights: pilFixedPoint(taps), maxTaps: taps.maxTaps)
        return Resample.fixedPointPass(
            src, LineLayout(sampleStride: srcSampleStride, lineStride: srcLineStride),
            into: [UInt8](repeating: 0, count: outCount),
            LineLayout(sampleStride: dstSampleStride, lineStride: dstLineStride),
            lines: lines, inSize: inSize, channels: channels, taps: k, precisionBits: pilPrecisionBits)
    }

    /// Pillow `Image.resize((width, height), Image.BICUBIC)` of an RGB image: horizontal pass,
    /// then vertical pass, each skipped when that dimension is unchanged.
    public static func pilBicubic(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        pil(image, width: width, height: height, filter: .bicubic)
    }

    /// Pillow `Image.resize((width, height), Image.BILINEAR)` of an RGB image (antialiased when
    /// shrinking, like every Pillow filter): torchvision's default `transforms.Resize` on a PIL
    /// image, which DVT's stage 1 uses for its base image.
    public static func pilBilinear(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        pil(image, width: width, height: height, filter: .bilinear)
    }

    static func pil(_ image: RGBImage, width: Int, height: Int, filter: PilFilter) -> RGBImage {
        precondition(width > 0 && height > 0, "pilBicubic: target size \(width)x\(height) must be positive")
        precondition(image.width > 0 && image.height > 0, "pilBicubic: empty source image \(image.width)x\(image.height)")
        var current = image
        if width != image.width {
            let out = pilPass(
                current.pixels, outCount: width * image.height * 3, lines: image.height, inSize: image.width, outSize: width,
                srcSampleStride: 3, srcLineStride: image.width * 3, dstSampleStride: 3, dstLineStride: width * 3, channels: 3,
                filter: filter)
            current = RGBImage(width: width, height: image.height, pixels: out)
        }
        if height != image.height {
            // Vertical: lines are columns (one per x), samples are rows.
            let out = pilPass(
                current.pixels, outCount: width * height * 3, lines: width, inSize: image.height, outSize: height,
                srcSampleStride: width * 3, srcLineStride: 3, dstSampleStride: width * 3, dstLineStride: 3, channels: 3,
                filter: filter)
            current = RGBImage(width: width, height: height, pixels: out)
        }
        return current
    }

    /// ATen's antialiased taps in float32, following its operation order and float/double
    /// promotions (`center = scale·(i + 0.5)` is formed in double and stored as float, as is the
    /// kernel argument), so results agree with torch to float rounding.
    static func torchTaps(inSize: Int, outSize: Int) -> ResampleTaps<Float> {
        let scale = Float(inSize) / Float(outSize)  // area_pixel_compute_scale, align_corners=False
        let support: Float = scale >= 1 ? 2 * scale : 2  // interp_size/2 · scale when shrinking
        let maxTaps = Int(support.rounded(.up)) * 2 + 1
        let invScale: Float = scale >= 1 ? 1 / scale : 1
        var start: [Int] = [], count: [Int] = []
        var weights = [Float](repeating: 0, count: outSize * maxTaps)
        for i in 0..<outSize {
            let center = Float(Double(scale) * (Double(i) + 0.5))
            let xmin = max(Int(Double(center - support) + 0.5), 0)
            var xsize = min(Int(Double(center + support) + 0.5), inSize) - xmin
            xsize = min(max(xsize, 0), maxTaps)
            var total: Float = 0
            for j in 0..<xsize {
                let arg = Float((Double(Float(j + xmin) - center) + 0.5) * Double(invScale))
                let w = cubicF(arg)
                weights[i * maxTaps + j] = w
                total += w
            }
            if total != 0 { for j in 0..<xsize { weights[i * maxTaps + j] /= total } }
            start.append(xmin)
            count.append(xsize)
        }
        return ResampleTaps(start: start, count: count, weights: weights, maxTaps: maxTaps)
    }

    /// torch `F.interpolate(x[None], size=(height, width), mode="bicubic", align_corners=False,
    /// antialias=True)[0]` for a float image tensor in `layout` (CHW or HWC), optionally of the
    /// crop `crop = (top, left, cropHeight, cropWidth)` of it (resize of a crop, as
    /// RandomResizedCrop does, without materialising the crop). Values are not clipped: bicubic
    /// overshoots slightly outside the input range, as torch's does. Not recorded for autodiff.
    public static func bicubicAntialiased(
        _ x: Tensor, height: Int, width: Int, layout: ImageLayout = .chw,
        crop: (top: Int, left: Int, height: Int, width: Int)? = nil
    ) -> Tensor {
        precondition(x.rank == 3, "bicubicAntialiased needs a rank-3 \(layout == .chw ? "(C, H, W)" : "(H, W, C)") tensor, got \(x.shape)")
        precondition(height > 0 && width > 0, "bicubicAntialiased: target size \(height)x\(width) must be positive")
        let (C, H, W) = layout == .chw ? (x.shape[0], x.shape[1], x.shape[2]) : (x.shape[2], x.shape[0], x.shape[1])
        let box = crop ?? (0, 0, H, W)
        precondition(
            box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 && box.top + box.height <= H && box.left + box.width <= W,
            "bicubicAntialiased: crop \(box) outside the \(H)x\(W) image")
        // Element strides of the source for (channel, row, column).
        let (sc, sy, sx) = layout == .chw ? (H * W, W, 1) : (1, W * C, C)
        let origin = box.top * sy + box.left * sx
        let outShape = layout == .chw ? [C, height, width] : [height, width, C]
        let out = Tensor(zeros: outShape)  // (C, height, width) or (height, width, C)
        let (oc, oy, ox) = layout == .chw ? (height * width, width, 1) : (1, width * C, C)
        // Horizontal pass into a (C, cropH, width) scratch image (skipped, as in torch, when the
        // width is unchanged; then the scratch is just the crop).
        let tmp = Tensor(zeros: [C, box.height, width])  // (C, cropH, width)
        let (tc, ty) = (box.height * width, width)
        if width != box.width {
            let taps = torchTaps(inSize: box.width, outSize: width)
            for c in 0..<C {
                Resample.floatPass(
                    x, LineLayout(offset: origin + c * sc, sampleStride: sx, lineStride: sy),
                    into: tmp, LineLayout(offset: c * tc, sampleStride: 1, lineStride: ty),
                    lines: box.height, inSize: box.width, taps: taps)
            }
        } else {
            Resample.copyBlock(
                x, offset: origin, strides: (sc, sy, sx), into: tmp, offset: 0, strides: (tc, ty, 1),
                planes: C, rows: box.height, cols: width)
        }
        // Vertical pass into the output.
        if height != box.height {
            let taps = torchTaps(inSize: box.height, outSize: height)
            for c in 0..<C {
                Resample.floatPass(
                    tmp, LineLayout(offset: c * tc, sampleStride: ty, lineStride: 1),
                    into: out, LineLayout(offset: c * oc, sampleStride: oy, lineStride: ox),
                    lines: width, inSize: box.height, taps: taps)
            }
        } else {
            Resample.copyBlock(
                tmp, offset: 0, strides: (tc, ty, 1), into: out, offset: 0, strides: (oc, oy, ox),
                planes: C, rows: height, cols: width)
        }
        return out
    }
}

extension Resize {
    /// ATen's non-antialiased bicubic coefficients at fraction t ∈ [0, 1] with A = −0.75
    /// (UpSample.h `get_cubic_upsample_coefficients`, `cubic_convolution1/2`), in float.
    @inline(__always)
    static func torchCubicCoefficients(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        func conv1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func conv2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        let x2: Float = 1 - t
        return (conv2(t + 1), conv1(t), conv1(x2), conv2(x2 + 1))
    }

    /// The 4 taps of each output of a 1-D non-antialiased bicubic resize, as ATen computes them
    /// in float (UpSampleKernel.cpp `compute_indices_weights_cubic`; UpSample.h): scale =
    /// in/out (`area_pixel_compute_scale`, align_corners=False), or 1/scaleFactor when a scale
    /// factor is given; source x = scale·(i + 0.5) − 0.5, not clamped for cubic;
    /// i₀ = min(⌊x⌋, in − 1); t = clamp(x − i₀, 0, 1); taps i₀ − 1 … i₀ + 2 clamped into
    /// 0..<in (edge replication).
    static func torchCubicTaps(inSize: Int, outSize: Int, scaleFactor: Double?) -> (indices: [Int], weights: [Float]) {
        let scale: Float =
            scaleFactor.map { $0 > 0 ? Float(1.0 / $0) : Float(inSize) / Float(outSize) }
            ?? Float(inSize) / Float(outSize)
        var indices = [Int](repeating: 0, count: outSize * 4), weights = [Float](repeating: 0, count: outSize * 4)
        for i in 0..<outSize {
            let real = scale * (Float(i) + 0.5) - 0.5
            let i0 = min(Int(real.rounded(.down)), inSize - 1)
            let t = min(max(real - Float(i0), 0), 1)
            let (w0, w1, w2, w3) = torchCubicCoefficients(t)
            for (j, w) in [w0, w1, w2, w3].enumerated() {
                indices[i * 4 + j] = min(max(i0 - 1 + j, 0), inSize - 1)
                weights[i * 4 + j] = w
            }
        }
        return (indices, weights)
    }

    /// torch `F.interpolate(x[None], size=(height, width), mode="bicubic", align_corners=False)`
    /// without antialias (`scale_factor=` when `scaleFactors` (sy, sx) are given; the output
    /// size is then still `height`×`width`), for a float tensor in `layout`: a horizontal then a
    /// vertical 4-tap pass (TensorCore `Resample.indexedPass`), the nesting of ATen's
    /// `Interpolate::eval` (rows over W inside, H outside). Equal to torch to float rounding
    /// (a few ulp: torch's vectorised CPU kernel contracts some multiply-adds). Both passes
    /// always run (a same-size pass has taps (0, 1, 0, 0), the identity). Not recorded for
    /// autodiff.
    public static func bicubicTorch(
        _ x: Tensor, height: Int, width: Int, layout: ImageLayout = .chw,
        scaleFactors: (Double, Double)? = nil
    ) -> Tensor {
        precondition(x.rank == 3, "bicubicTorch needs a rank-3 \(layout == .chw ? "(C, H, W)" : "(H, W, C)") tensor, got \(x.shape)")
        precondition(height > 0 && width > 0, "bicubicTorch: target size \(height)x\(width) must be positive")
        let (C, H, W) = layout == .chw ? (x.shape[0], x.shape[1], x.shape[2]) : (x.shape[2], x.shape[0], x.shape[1])
        let (sc, sy, sx) = layout == .chw ? (H * W, W, 1) : (1, W * C, C)
        let tmp = Tensor(zeros: [C, H, width])  // (C, H, width)
        let tx = torchCubicTaps(inSize: W, outSize: width, scaleFactor: scaleFactors?.1)
        for c in 0..<C {
            Resample.indexedPass(
                x, LineLayout(offset: c * sc, sampleStride: sx, lineStride: sy),
                into: tmp, LineLayout(offset: c * H * width, sampleStride: 1, lineStride: width),
                lines: H, inSize: W, taps: 4, indices: tx.indices, weights: tx.weights)
        }
        let out = Tensor(zeros: layout == .chw ? [C, height, width] : [height, width, C])
        let (oc, oy, ox) = layout == .chw ? (height * width, width, 1) : (1, width * C, C)
        let ty = torchCubicTaps(inSize: H, outSize: height, scaleFactor: scaleFactors?.0)
        for c in 0..<C {
            Resample.indexedPass(
                tmp, LineLayout(offset: c * H * width, sampleStride: width, lineStride: 1),
                into: out, LineLayout(offset: c * oc, sampleStride: oy, lineStride: ox),
                lines: width, inSize: H, taps: 4, indices: ty.indices, weights: ty.weights)
        }
        return out
    }

    /// (m, n): row y holds the taps of output y of a 1-D resize n → m by `rule`, obtained by
    /// resizing one-hot bases, so a matrix product applies exactly the same weights.
    static func matrix(from n: Int, to m: Int, rule: PositionResampling) -> Tensor {
        let identity = Tensor(zeros: [n, 1, n])  // (n, 1, n): channel k is one-hot at position k
        for k in 0..<n { identity[flat: k * n + k] = 1 }
        let r = rule.resize(identity, height: m, width: 1, layout: .hwc)
        return r.reshape([m, n])
    }
}

extension PositionResampling {
    /// This rule's 2-D resize of a float tensor.
    public func resize(_ x: Tensor, height: Int, width: Int, layout: ImageLayout) -> Tensor {
        switch self {
        case .bicubicAntialias: return Resize.bicubicAntialiased(x, height: height, width: width, layout: layout)
        case .bicubic: return Resize.bicubicTorch(x, height: height, width: width, layout: layout)
        case .bicubicOffset:
            // (g + 0.1) / G0 per axis, in double as Python computes it; the pretraining grid is
            // square, and a 1-wide axis (Resize.matrix's bases) stays the identity.
            let (h0, w0) = layout == .chw ? (x.shape[1], x.shape[2]) : (x.shape[0], x.shape[1])
            return Resize.bicubicTorch(
                x, height: height, width: width, layout: layout,
                scaleFactors: ((Double(height) + 0.1) / Double(h0), (Double(width) + 0.1) / Double(w0)))
        }
    }
}

extension RGBImage {
    /// Pillow-exact bicubic resize (`Image.resize((width, height), Image.BICUBIC)`).
    public func resized(width: Int, height: Int) -> RGBImage {
        Resize.pilBicubic(self, width: width, height: height)
    }
}
