import Foundation

// Rows of features kept for random row gathers, in fp32, bf16 or int8: stage 1's view features
// (V·h·w tokens of C channels) are held for the whole fit and read 2048 random rows a step, and
// in fp32 they are most of the official recipe's memory (769 views of 37 × 37 × 768 at ViT-B/14
// 518²: 3.0 GiB; 1.5 GiB in bf16, 0.75 GiB in int8).

/// A (rows, cols) matrix stored as fp32, bf16 (round to nearest even, as every bf16 pack of the
/// engine) or int8 (one fp32 scale per row), written once block by block (`setRows`) and read as
/// fp32 by `gatherRows` and `copyRows`. The fp32 form can wrap an existing tensor's storage
/// without a copy; then reads are exact copies of its rows.
///
/// int8: each channel c is first standardised, y = (x − μ_c) · (1 / σ_c), with μ_c and σ_c the
/// mean and standard deviation of c over the first block written (fixed from then on), then
/// each row is quantised symmetrically by its own absmax: s = max|y| / 127, q = round(y · 127 /
/// max|y|) (nearest even); a value reads back as q · s · σ_c + μ_c, within s · σ_c / 2 of the
/// original (plus fp32 rounding). A scale per row because rows are written a batch at a time (a
/// channel's range over all rows is not known until the last batch) and because a ViT's few
/// high-norm tokens would set the step of every token in their channels; per row they coarsen
/// only themselves. The channel step first because ViT features have channels with large
/// offsets and ranges (DINOv2: |mean| up to 7 standard deviations) that would otherwise set
/// every row's step: on DINOv2 ViT-S/14 features it halves the error (docs/speed.md).
public final class FeatureRows: @unchecked Sendable {
    /// How the elements are kept.
    public enum Element: String, Codable, Sendable, CaseIterable {
        case fp32, bf16, int8
        /// Bytes per element (int8 also keeps one fp32 scale per row).
        public var size: Int {
            switch self {
            case .fp32: 4
            case .bf16: 2
            case .int8: 1
            }
        }
    }

    public let rows: Int
    public let cols: Int
    public let element: Element
    /// fp32: the values (a wrapped tensor's storage, or its own).
    private let f32: Tensor?
    /// bf16: the values, row-major.
    private let b16: UnsafeMutablePointer<UInt16>?
    /// int8: the quantised values, row-major, and each row's scale.
    private let q8: UnsafeMutablePointer<Int8>?
    private let scales: UnsafeMutablePointer<Float>?
    /// int8: each channel's offset μ, step σ and 1 / σ, set by the first `setRows` (empty before).
    private var channelOffset: [Float] = []
    private var channelScale: [Float] = []
    private var channelInverse: [Float] = []

    /// Zero-filled storage for (rows, cols).
    public init(rows: Int, cols: Int, element: Element) {
        precondition(rows >= 0 && cols >= 1, "FeatureRows needs rows >= 0 and cols >= 1, got (\(rows), \(cols))")
        self.rows = rows
        self.cols = cols
        self.element = element
        let n = Swift.max(rows * cols, 1)
        switch element {
        case .fp32:
            (f32, b16, q8, scales) = (Tensor(zeros: [rows, cols]), nil, nil, nil)
        case .bf16:
            (f32, b16, q8, scales) = (nil, .allocate(capacity: n), nil, nil)
            b16!.initialize(repeating: 0, count: n)
        case .int8:
            (f32, b16, q8, scales) = (nil, nil, .allocate(capacity: n), .allocate(capacity: Swift.max(rows, 1)))
            q8!.initialize(repeating: 0, count: n)
            scales!.initialize(repeating: 0, count: Swift.max(rows, 1))
        }
    }

    /// `t`'s elements as (count / last, last) rows: fp32 shares `t`'s storage (no copy; `t` must
    /// not change while this is read), bf16 and int8 round a copy.
    public convenience init(_ t: Tensor, element: Element) {
        precondition(t.rank >= 1 && t.shape.last! >= 1, "FeatureRows needs a tensor with a non-empty last axis, got \(t.shape)")
        let c = t.shape.last!, r = t.count / c
        if element == .fp32 {
            self.init(wrapping: t.reshape([r, c]))
        } else {
            self.init(rows: r, cols: c, element: element)
            setRows(0, from: t)
        }
    }

    private init(wrapping t: Tensor) {
        rows = t.shape[0]
        cols = t.shape[1]
        element = .fp32
        f32 = t
        (b16, q8, scales) = (nil, nil, nil)
    }

    deinit {
        b16?.deallocate()
        q8?.deallocate()
        scales?.deallocate()
    }

    /// Bytes the values take (with int8's row and channel scales).
    public var bytes: Int { rows * cols * element.size + (element == .int8 ? rows * 4 + cols * 12 : 0) }

    /// Writes `t`'s rows (any shape whose last axis is `cols`) from row `start` on.
    public func setRows(_ start: Int, from t: Tensor) {
        let x = t  // tensors are contiguous (views are reshapes)
        precondition(x.shape.last == cols, "FeatureRows.setRows: last axis \(x.shape) must be \(cols)")
        let n = x.count / cols
        precondition(start >= 0 && start + n <= rows, "FeatureRows.setRows: rows \(start)..<\(start + n) outside 0..<\(rows)")
        switch element {
        case .fp32:
            (f32!.ptr + start * cols).update(from: x.ptr, count: n * cols)
            f32!.storage.version &+= 1
        case .bf16:
            BFloat16.pack(x.ptr, rows: n, cols: cols, ld: cols, into: b16! + start * cols, parallel: true)
        case .int8:
            if channelOffset.isEmpty && n > 0 { calibrate(x.ptr, rows: n) }
            let c = cols, px = x.ptr, pq = q8! + start * cols, ps = scales! + start
            channelOffset.withUnsafeBufferPointer { mu in
                channelInverse.withUnsafeBufferPointer { inv in
                    Parallel.forRanges(n, grain: Swift.max(1, (1 << 16) / c)) { r in
                        for i in r {
                            FeatureRows.quantise(
                                px + i * c, offset: mu.baseAddress!, inverse: inv.baseAddress!, into: pq + i * c, scale: ps + i,
                                count: c, row: start + i)
                        }
                    }
                }
            }
        }
    }

    /// The rows at `indices` as an fp32 (n, cols) tensor (no gradient).
    public func gatherRows(_ indices: [Int]) -> Tensor {
        for i in indices { precondition(i >= 0 && i < rows, "FeatureRows.gatherRows: index \(i) out of range 0..<\(rows)") }
        let c = cols
        let out = Tensor.uninitialized([indices.count, c])  // (n, C)
        let po = out.ptr
        indices.withUnsafeBufferPointer { idx in
            // Workers only for gathers of >= 2^18 values a piece (as Tensor.gatherRows).
            switch element {
            case .fp32:
                let px = f32!.ptr
                Parallel.forRanges(idx.count, grain: Swift.max(1, (1 << 18) / c)) { r in
                    for i in r { (po + i * c).update(from: px + idx[i] * c, count: c) }
                }
            case .bf16:
                let px = b16!
                Parallel.forRanges(idx.count, grain: Swift.max(1, (1 << 18) / c)) { r in
                    for i in r { FeatureRows.widen(px + idx[i] * c, into: po + i * c, count: c) }
                }
            case .int8:
                let px = q8!, ps = scales!
                let (mu, sigma) = channelOffset.isEmpty
                    ? ([Float](repeating: 0, count: c), [Float](repeating: 1, count: c)) : (channelOffset, channelScale)
                mu.withUnsafeBufferPointer { m in
                    sigma.withUnsafeBufferPointer { g in
                        Parallel.forRanges(idx.count, grain: Swift.max(1, (1 << 18) / c)) { r in
                            for i in r {
                                FeatureRows.dequantise(
                                    px + idx[i] * c, scale: ps[idx[i]], channelScale: g.baseAddress!, offset: m.baseAddress!,
                                    into: po + i * c, count: c)
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Rows `range` as an fp32 (n, cols) tensor (a copy).
    public func copyRows(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "FeatureRows.copyRows: \(range) outside 0..<\(rows)")
        return gatherRows(Array(range))
    }

    /// bf16 → fp32 (exact: the bf16 bits are the top half of the float), 16 lanes at a time.
    @inline(__always)
    static func widen(_ s: UnsafePointer<UInt16>, into d: UnsafeMutablePointer<Float>, count: Int) {
        var j = 0
        let sr = UnsafeRawPointer(s), dr = UnsafeMutableRawPointer(d)
        while j + 16 <= count {
            let v = sr.loadUnaligned(fromByteOffset: 2 * j, as: SIMD16<UInt16>.self)
            dr.storeBytes(of: SIMD16<UInt32>(truncatingIfNeeded: v) &<< 16, toByteOffset: 4 * j, as: SIMD16<UInt32>.self)
            j += 16
        }
        while j < count { d[j] = BFloat16.float(s[j]); j += 1 }
    }

    /// μ_c and σ_c from the first block's `n` rows (see the type's comment), in fp64 sums in row
    /// order. σ_c is floored at 1e-3 of the largest σ so that a channel constant in the first
    /// block cannot blow up later rows; an all-constant block gives σ = 1.
    private func calibrate(_ x: UnsafePointer<Float>, rows n: Int) {
        let c = cols
        var sum = [Double](repeating: 0, count: c), ss = [Double](repeating: 0, count: c)
        for r in 0..<n { for j in 0..<c { sum[j] += Double(x[r * c + j]) } }
        let mean = sum.map { $0 / Double(n) }
        for r in 0..<n {
            for j in 0..<c {
                let d = Double(x[r * c + j]) - mean[j]
                ss[j] += d * d
            }
        }
        let std = ss.map { ($0 / Double(n)).squareRoot() }
        let top = std.max()!
        channelOffset = mean.map { Float($0) }
        channelScale = std.map { top > 0 ? Float(Swift.max($0, 1e-3 * top)) : 1 }
        channelInverse = channelScale.map { 1 / $0 }
    }

    /// One standardised row to int8 with its absmax scale (see the type's comment). A row equal
    /// to the offsets has scale 0 and reads back as them; a non-finite value has no 8-bit form
    /// and stops the program.
    @inline(__always)
    static func quantise(
        _ x: UnsafePointer<Float>, offset mu: UnsafePointer<Float>, inverse inv: UnsafePointer<Float>,
        into q: UnsafeMutablePointer<Int8>, scale: UnsafeMutablePointer<Float>, count: Int, row: Int
    ) {
        var m: Float = 0
        var finite = true
        for j in 0..<count {
            let a = Swift.abs((x[j] - mu[j]) * inv[j])
            finite = finite && a.isFinite
            m = Swift.max(m, a)
        }
        precondition(finite, "FeatureRows int8: row \(row) holds a NaN or an infinity, which 8 bits cannot hold")
        let k: Float = m > 0 ? 127 / m : 0
        scale.pointee = m / 127
        for j in 0..<count {
            // |y · k| <= 127 up to rounding, so the clamp only guards the conversion.
            let v = Swift.min(Swift.max(((x[j] - mu[j]) * inv[j] * k).rounded(.toNearestOrEven), -127), 127)
            q[j] = Int8(v)
        }
    }

    /// int8 row → fp32: q · scale · σ_c + μ_c (in that order), 16 lanes at a time.
    @inline(__always)
    static func dequantise(
        _ s: UnsafePointer<Int8>, scale: Float, channelScale g: UnsafePointer<Float>, offset mu: UnsafePointer<Float>,
        into d: UnsafeMutablePointer<Float>, count: Int
    ) {
        var j = 0
        let sr = UnsafeRawPointer(s), dr = UnsafeMutableRawPointer(d)
        let gr = UnsafeRawPointer(g), mr = UnsafeRawPointer(mu)
        while j + 16 <= count {
            let v = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: sr.loadUnaligned(fromByteOffset: j, as: SIMD16<Int8>.self)))
            let gv = gr.loadUnaligned(fromByteOffset: 4 * j, as: SIMD16<Float>.self)
            let mv = mr.loadUnaligned(fromByteOffset: 4 * j, as: SIMD16<Float>.self)
            dr.storeBytes(of: v * scale * gv + mv, toByteOffset: 4 * j, as: SIMD16<Float>.self)
            j += 16
        }
        while j < count {
            d[j] = Float(s[j]) * scale * g[j] + mu[j]
            j += 1
        }
    }
}
