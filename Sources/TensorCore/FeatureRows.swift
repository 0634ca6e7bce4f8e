import Foundation

// Rows of features kept for random row gathers, in fp32 or bf16: stage 1's view features
// (V·h·w tokens of C channels) are held for the whole fit and read 2048 random rows a step, and
// in fp32 they are most of the official recipe's memory (769 views of 37 × 37 × 768 at ViT-B/14
// 518²: 3.0 GiB; 1.5 GiB in bf16).

/// A (rows, cols) matrix stored as fp32 or bf16 (round to nearest even, as every bf16 pack of
/// the engine), written once block by block (`setRows`) and read as fp32 by `gatherRows` and
/// `copyRows`. The fp32 form can wrap an existing tensor's storage without a copy; then reads are
/// exact copies of its rows.
public final class FeatureRows: @unchecked Sendable {
    /// How the elements are kept.
    public enum Element: String, Codable, Sendable, CaseIterable {
        case fp32, bf16
        /// Bytes per element.
        public var size: Int { self == .fp32 ? 4 : 2 }
    }

    public let rows: Int
    public let cols: Int
    public let element: Element
    /// fp32: the values (a wrapped tensor's storage, or its own).
    private let f32: Tensor?
    /// bf16: the values, row-major.
    private let b16: UnsafeMutablePointer<UInt16>?

    /// Zero-filled storage for (rows, cols).
    public init(rows: Int, cols: Int, element: Element) {
        precondition(rows >= 0 && cols >= 1, "FeatureRows needs rows >= 0 and cols >= 1, got (\(rows), \(cols))")
        self.rows = rows
        self.cols = cols
        self.element = element
        switch element {
        case .fp32:
            f32 = Tensor(zeros: [rows, cols])
            b16 = nil
        case .bf16:
            f32 = nil
            b16 = .allocate(capacity: Swift.max(rows * cols, 1))
            b16!.initialize(repeating: 0, count: Swift.max(rows * cols, 1))
        }
    }

    /// `t`'s elements as (count / last, last) rows: fp32 shares `t`'s storage (no copy; `t` must
    /// not change while this is read), bf16 rounds a copy.
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
        b16 = nil
    }

    deinit { b16?.deallocate() }

    /// Bytes the values take.
    public var bytes: Int { rows * cols * element.size }

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
}
