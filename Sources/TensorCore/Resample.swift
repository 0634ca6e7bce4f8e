// Separable 1-D resampling passes: the hot loops of Vision's Pillow- and torch-exact resizes.
// Vision computes the per-output taps (the filter math of each library); these kernels apply
// them along one axis of strided data, in exactly the order the libraries do, so results stay
// bit-identical to theirs.

/// Per-output taps of a 1-D filter: output `o` is Σ_j w[o·maxTaps + j] · in[start[o] + j] for
/// j < count[o].
public struct ResampleTaps<Weight: Sendable>: Sendable {
    public let start: [Int]
    public let count: [Int]
    public let weights: [Weight]
    public let maxTaps: Int

    public init(start: [Int], count: [Int], weights: [Weight], maxTaps: Int) {
        precondition(
            start.count == count.count && weights.count >= start.count * maxTaps,
            "ResampleTaps: \(start.count) starts, \(count.count) counts, \(weights.count) weights for \(maxTaps) taps")
        self.start = start
        self.count = count
        self.weights = weights
        self.maxTaps = maxTaps
    }

    /// Checks every tap reads inside `0..<inSize`, so the kernels need no per-sample check.
    func check(inSize: Int) {
        for o in start.indices {
            precondition(
                count[o] >= 0 && count[o] <= maxTaps && start[o] >= 0 && start[o] + count[o] <= inSize,
                "ResampleTaps: output \(o) reads \(start[o])..<\(start[o] + count[o]) of \(inSize) samples")
        }
    }
}

/// Where one pass reads and writes: `lines` independent lines of samples; sample `s` of line
/// `l` sits at `offset + l·lineStride + s·sampleStride` (elements).
public struct LineLayout: Sendable {
    public let offset: Int, sampleStride: Int, lineStride: Int
    public init(offset: Int = 0, sampleStride: Int, lineStride: Int) {
        self.offset = offset
        self.sampleStride = sampleStride
        self.lineStride = lineStride
    }

    /// The largest element index `lines` lines of `samples` samples (plus `channels` − 1) touch.
    func reach(lines: Int, samples: Int, channels: Int = 1) -> Int {
        offset + (lines - 1) * lineStride + (samples - 1) * sampleStride + channels - 1
    }
}

public enum Resample {
    /// Pillow's 8-bit pass (Resample.c ImagingResampleHorizontal/Vertical_8bpc): fixed-point
    /// taps with `precisionBits` fraction bits, rounding by adding half, an arithmetic shift
    /// (floor), then clipping to 0...255. `channels` interleaved channels per sample.
    /// Returns `dst` with the pass written into it.
    public static func fixedPointPass(
        _ src: [UInt8], _ from: LineLayout, into dst: [UInt8], _ to: LineLayout,
        lines: Int, inSize: Int, channels: Int, taps: ResampleTaps<Int32>,
        precisionBits: Int
    ) -> [UInt8] {
        let outSize = taps.start.count
        var dst = dst
        guard lines > 0 && outSize > 0 && channels > 0 else { return dst }
        taps.check(inSize: inSize)
        precondition(
            from.reach(lines: lines, samples: inSize, channels: channels) < src.count
                && to.reach(lines: lines, samples: outSize, channels: channels) < dst.count,
            "fixedPointPass: layout outside the buffers")
        let half = 1 << (precisionBits - 1)
        src.withUnsafeBufferPointer { sAll in
            dst.withUnsafeMutableBufferPointer { dAll in
                taps.weights.withUnsafeBufferPointer { k in
                    let s0 = sAll.baseAddress! + from.offset, d0 = UnsafeMutablePointer(dAll.baseAddress! + to.offset)
                    let (ss, ds) = (from.sampleStride, to.sampleStride)
                    let (sl, dl) = (from.lineStride, to.lineStride)
                    Parallel.forRanges(lines, grain: max(1, 16384 / max(outSize * channels, 1))) { range in
                        for line in range {
                            let s = s0 + line * sl, d = d0 + line * dl
                            for o in 0..<outSize {
                                let start = taps.start[o], n = taps.count[o], kw = o * taps.maxTaps
                                for c in 0..<channels {
                                    var acc = half
                                    for j in 0..<n { acc += Int(s[(start + j) * ss + c]) * Int(k[kw + j]) }
                                    d[o * ds + c] = UInt8(clamping: acc >> precisionBits)
                                }
                            }
                        }
                    }
                }
            }
        }
        return dst
    }

    /// A float pass (ATen's separable antialiased interpolation): acc = Σ in·w in tap order,
    /// from `src` into `dst` in place. Not recorded for autodiff (a data-pipeline step).
    public static func floatPass(
        _ src: Tensor, _ from: LineLayout, into dst: Tensor, _ to: LineLayout,
        lines: Int, inSize: Int, taps: ResampleTaps<Float>
    ) {
        let outSize = taps.start.count
        guard lines > 0 && outSize > 0 else { return }
        taps.check(inSize: inSize)
        precondition(
            from.reach(lines: lines, samples: inSize) < src.count && to.reach(lines: lines, samples: outSize) < dst.count,
            "floatPass: layout outside the tensors")
        let s0 = src.ptr + from.offset, d0 = dst.ptr + to.offset
        let (ss, ds, sl, dl) = (from.sampleStride, to.sampleStride, from.lineStride, to.lineStride)
        taps.weights.withUnsafeBufferPointer { w in
            Parallel.forRanges(lines, grain: max(1, 16384 / max(outSize, 1))) { range in
                for line in range {
                    let s = s0 + line * sl, d = d0 + line * dl
                    for o in 0..<outSize {
                        let start = taps.start[o], n = taps.count[o], kw = o * taps.maxTaps
                        var acc: Float = 0
                        for j in 0..<n { acc += s[(start + j) * ss] * w[kw + j] }
                        d[o * ds] = acc
                    }
                }
            }
        }
    }

    /// A float pass with a fixed number of taps per output at explicit input indices (repeats
    /// allowed): ATen's non-antialiased separable interpolation (upsample_bicubic2d's 4 taps,
    /// with indices clamped to the edge). acc = in[i₀]·w₀, then += in[iⱼ]·wⱼ in tap order, the
    /// order of ATen's scalar `Interpolate::eval` (UpSampleKernel.cpp); its vectorised build
    /// fuses some multiply-adds, so results agree to float rounding. `indices` and `weights`
    /// are row-major (outSize, taps). Not recorded for autodiff.
    public static func indexedPass(
        _ src: Tensor, _ from: LineLayout, into dst: Tensor, _ to: LineLayout,
        lines: Int, inSize: Int, taps: Int, indices: [Int], weights: [Float]
    ) {
        precondition(
            taps >= 1 && indices.count == weights.count && indices.count % taps == 0,
            "indexedPass: \(indices.count) indices and \(weights.count) weights for \(taps) taps")
        let outSize = indices.count / taps
        guard lines > 0 && outSize > 0 else { return }
        precondition(indices.allSatisfy { $0 >= 0 && $0 < inSize }, "indexedPass: an index is outside 0..<\(inSize)")
        precondition(
            from.reach(lines: lines, samples: inSize) < src.count && to.reach(lines: lines, samples: outSize) < dst.count,
            "indexedPass: layout outside the tensors")
        let s0 = src.ptr + from.offset, d0 = dst.ptr + to.offset
        let (ss, ds, sl, dl) = (from.sampleStride, to.sampleStride, from.lineStride, to.lineStride)
        indices.withUnsafeBufferPointer { ix in
            weights.withUnsafeBufferPointer { w in
                Parallel.forRanges(lines, grain: max(1, 16384 / max(outSize * taps, 1))) { range in
                    for line in range {
                        let s = s0 + line * sl, d = d0 + line * dl
                        for o in 0..<outSize {
                            let k = o * taps
                            var acc = s[ix[k] * ss] * w[k]
                            for j in 1..<taps { acc += s[ix[k + j] * ss] * w[k + j] }
                            d[o * ds] = acc
                        }
                    }
                }
            }
        }
    }

    /// Copies a (planes, rows, cols) strided block from `src` into `dst` (no arithmetic): the
    /// pass a resize skips when a dimension keeps its size. Strides are (plane, row, col).
    public static func copyBlock(
        _ src: Tensor, offset: Int, strides s: (Int, Int, Int), into dst: Tensor,
        offset dstOffset: Int, strides d: (Int, Int, Int), planes: Int, rows: Int, cols: Int
    ) {
        guard planes > 0 && rows > 0 && cols > 0 else { return }
        precondition(
            offset + (planes - 1) * s.0 + (rows - 1) * s.1 + (cols - 1) * s.2 < src.count
                && dstOffset + (planes - 1) * d.0 + (rows - 1) * d.1 + (cols - 1) * d.2 < dst.count,
            "copyBlock: block outside the tensors")
        let ps = src.ptr + offset, pd = dst.ptr + dstOffset
        for c in 0..<planes { for y in 0..<rows { for x in 0..<cols { pd[c * d.0 + y * d.1 + x * d.2] = ps[c * s.0 + y * s.1 + x * s.2] } } }
    }
}
