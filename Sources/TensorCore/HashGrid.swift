import CKernels
import Foundation

// 2-D multiresolution hash encoding (Instant-NGP), following tiny-cuda-nn's grid rules.
// Letters: N points, L levels, F features per level, T rows of the concatenated tables.

/// Level geometry of a 2-D hash grid, following tiny-cuda-nn's `GridEncoding`:
///
/// ```
/// growth  = exp((ln finest − ln base) / (L − 1))     (DVT's `per_level_scale`, numpy float64)
/// scale_l = exp2f(l · log2f(Float(growth))) · base − 1      (float32 arithmetic)
/// res_l   = ceil(scale_l) + 1            (vertices per side)
/// size_l  = min(roundUp8(res_l²), 2^log2TableSize)
/// ```
/// The "−1" makes `base` count grid vertices rather than cells. The float32 arithmetic is
/// tiny-cuda-nn's (`grid_scale` and `grid_resolution` in include/tiny-cuda-nn/common_device.h;
/// the JSON `per_level_scale` is read into a float and `std::log2` of it taken in float in
/// encodings/grid.h) and it matters: at DVT's default (16 levels, 16…1024) levels 5, 10 and 15
/// come out at 63.000008, 255.00009 and 1023.0004, so their resolutions are 65, 257 and 1025
/// rather than the 64, 256 and 1024 exact arithmetic gives, and level 15 (1025² > 2^20) is
/// hashed. DVT builds the grid in dvt/models/neural_feature_field.py (lines 25-37).
/// A level is indexed densely while res² fits its table, hashed otherwise.
public struct HashGridLayout: Sendable, Equatable {
    public let levels: Int
    public let featuresPerLevel: Int
    public let log2TableSize: Int
    public let baseResolution: Int
    public let finestResolution: Int
    public let scales: [Float]
    public let resolutions: [Int]
    public let sizes: [Int]
    /// Row offset of each level in the concatenated table; `offsets[levels]` is the total.
    public let offsets: [Int]

    public var outputDimension: Int { levels * featuresPerLevel }
    public var totalRows: Int { offsets[levels] }

    public init(
        levels: Int = 16, featuresPerLevel: Int = 8, log2TableSize: Int = 20,
        baseResolution: Int = 16, finestResolution: Int = 1024
    ) {
        precondition(levels >= 1 && featuresPerLevel >= 1, "hash grid needs >= 1 level and feature, got \(levels), \(featuresPerLevel)")
        precondition((4...30).contains(log2TableSize), "log2 table size \(log2TableSize) outside 4...30")
        precondition(
            baseResolution >= 2 && finestResolution >= baseResolution,
            "hash grid resolutions must satisfy 2 <= base (\(baseResolution)) <= finest (\(finestResolution))")
        self.levels = levels
        self.featuresPerLevel = featuresPerLevel
        self.log2TableSize = log2TableSize
        self.baseResolution = baseResolution
        self.finestResolution = finestResolution
        let cap = 1 << log2TableSize
        var scales: [Float] = [], res: [Int] = [], sizes: [Int] = [], offsets = [0]
        let log2Growth = HashGridLayout.log2PerLevelScale(levels: levels, base: baseResolution, finest: finestResolution)
        for l in 0..<levels {
            let scale = HashGridLayout.gridScale(level: l, log2PerLevelScale: log2Growth, base: baseResolution)
            let r = Int(scale.rounded(.up)) + 1
            let size = min((r * r + 7) / 8 * 8, cap)
            scales.append(scale)
            res.append(r)
            sizes.append(size)
            offsets.append(offsets[l] + size)
        }
        self.scales = scales
        resolutions = res
        self.sizes = sizes
        self.offsets = offsets
    }

    /// log2f of DVT's `per_level_scale` (computed in float64 by numpy, stored as a float by
    /// tiny-cuda-nn).
    public static func log2PerLevelScale(levels: Int, base: Int, finest: Int) -> Float {
        guard levels > 1 else { return 0 }
        let growth = Foundation.exp((Foundation.log(Double(finest)) - Foundation.log(Double(base))) / Double(levels - 1))
        return Foundation.log2(Float(growth))
    }

    /// tiny-cuda-nn's `grid_scale`, in float32: exp2f(level · log2_per_level_scale) · base − 1.
    public static func gridScale(level: Int, log2PerLevelScale: Float, base: Int) -> Float {
        Foundation.exp2(Float(level) * log2PerLevelScale) * Float(base) - 1
    }

    /// Whether level `l` is indexed densely (its full vertex grid fits in its table).
    public func isDense(_ l: Int) -> Bool { resolutions[l] * resolutions[l] <= sizes[l] }
}

/// Rows of a gradient buffer touched since it was last cleared, so a sparse optimiser can
/// visit only those rows and zeroing costs O(touched) instead of O(table).
package final class TouchedRows {
    package private(set) var rows: [Int32] = []
    private var mark: UnsafeMutablePointer<UInt8>
    private let capacity: Int

    init(rowCount: Int) {
        capacity = rowCount
        mark = .allocate(capacity: max(rowCount, 1))
        mark.initialize(repeating: 0, count: max(rowCount, 1))
    }

    deinit { mark.deallocate() }

    /// Marks rows found by a worker; byte marks (not bits) so workers on disjoint row ranges never share a word.
    @inline(__always) func markRow(_ r: Int) -> Bool {
        if mark[r] != 0 { return false }
        mark[r] = 1
        return true
    }

    /// Prefetches row `r`'s mark (see `dvt_prefetch`).
    @inline(__always) func prefetchMark(_ r: Int) { dvt_prefetch(mark + r) }

    func append(_ newRows: [Int32]) { rows.append(contentsOf: newRows) }

    /// Forgets every row (after their gradient rows were zeroed).
    package func clear() {
        for r in rows { mark[Int(r)] = 0 }
        rows.removeAll(keepingCapacity: true)
    }
}

extension Tensor {
    /// The coherent-prime spatial hash of tiny-cuda-nn for 2-D: x ⊕ (y · 2654435761), in
    /// uint32 arithmetic. (π₁ = 1; 2654435761 is Knuth's multiplicative-hash prime, which
    /// tiny-cuda-nn uses as its second prime.) Hashed levels have power-of-two sizes, so the
    /// uint32 wrap-around gives the same index as 64-bit arithmetic would.
    @inline(__always)
    static func gridIndex(_ x: Int, _ y: Int, res: Int, size: Int, dense: Bool) -> Int {
        let raw: UInt32 =
            dense
            ? UInt32(truncatingIfNeeded: x + y * res)
            : UInt32(truncatingIfNeeded: x) ^ (UInt32(truncatingIfNeeded: y) &* 2_654_435_761)
        return Int(raw % UInt32(size))
    }

    /// Multiresolution hash encoding of 2-D points.
    ///
    /// `table` (T, F) holds every level's rows back to back (`layout.offsets`); `coords` (N, 2)
    /// are (x, y) in [0, 1]. Each level looks up pos = coord · scale + 0.5 and blends the four
    /// surrounding vertices bilinearly. Output (N, L·F), level-major.
    ///
    /// Backward is the weighted scatter-add of the output gradient into `table`'s gradient, run
    /// one level per worker (levels own disjoint rows, so no two workers write the same row), and
    /// it records the touched rows for the sparse Adam. No gradient flows to `coords`.
    ///
    /// The forward computes every (point, level) cell once (`HashGridCells`: the four row indices
    /// and the fractional position) and the backward reuses it. Both passes prefetch the rows a
    /// few points ahead: at DVT's size the fine levels are 2^20-row tables visited in random
    /// order, and without the hints each point waits for its DRAM misses in turn. Neither changes
    /// a float operation or its order.
    ///
    /// - Paper: Müller et al., "Instant Neural Graphics Primitives with a Multiresolution Hash Encoding" (2022).
    public static func hashGridEncode(_ table: Tensor, coords: Tensor, layout: HashGridLayout) -> Tensor {
        let f = layout.featuresPerLevel, levels = layout.levels
        precondition(
            table.shape == [layout.totalRows, f],
            "hashGridEncode: table shape \(table.shape) does not match the layout (\(layout.totalRows), \(f))")
        precondition(coords.rank == 2 && coords.shape[1] == 2, "hashGridEncode: coords must be (N, 2), got \(coords.shape)")
        let n = coords.shape[0], d = levels * f
        let out = Tensor.uninitialized([n, d])  // (N, L·F)
        let cells = HashGridCells(coords: coords, layout: layout)
        let pt = table.ptr, po = out.ptr
        let far = HashGridCells.farLevels(layout)
        Parallel.forRanges(n, grain: 256) { range in
            for i in range {
                // The rows of the point `ahead` iterations on, in the levels that miss the caches.
                let ahead = i + HashGridCells.forwardDistance
                if ahead < range.upperBound {
                    for l in far { for c in 0..<4 { dvt_prefetch(pt + Int(cells.rows[cells.slot(ahead, l) + c]) * f) } }
                }
                for l in 0..<levels {
                    let k = cells.slot(i, l)
                    let (w00, w10, w01, w11) = cells.weights(i, l)
                    let r00 = pt + Int(cells.rows[k]) * f, r10 = pt + Int(cells.rows[k + 1]) * f
                    let r01 = pt + Int(cells.rows[k + 2]) * f, r11 = pt + Int(cells.rows[k + 3]) * f
                    let o = po + i * d + l * f
                    for j in 0..<f {
                        o[j] = w00 * r00[j] + w10 * r10[j] + w01 * r01[j] + w11 * r11[j]
                    }
                }
            }
        }
        return out.record("hashGridEncode", [table]) { g in
            let gt = table.gradBuffer()
            let tracker: TouchedRows
            if let t = table.grad!.touchedRows {
                tracker = t
            } else {
                tracker = TouchedRows(rowCount: layout.totalRows)
                table.grad!.touchedRows = tracker
            }
            let pg = g.ptr
            var perLevel = [[Int32]](repeating: [], count: levels)
            perLevel.withUnsafeMutableBufferPointer { lists in
                Parallel.forEach(levels) { l in
                    var touched: [Int32] = []
                    let prefetch = far.contains(l)
                    for i in 0..<n {
                        let ahead = i + HashGridCells.backwardDistance
                        if prefetch && ahead < n {
                            let k = cells.slot(ahead, l)
                            for c in 0..<4 {
                                let row = Int(cells.rows[k + c])
                                dvt_prefetch(gt + row * f)
                                tracker.prefetchMark(row)
                            }
                        }
                        let k = cells.slot(i, l)
                        let (w00, w10, w01, w11) = cells.weights(i, l)
                        let gi = pg + i * d + l * f
                        @inline(__always) func scatter(_ row: Int, _ w: Float) {
                            if tracker.markRow(row) { touched.append(Int32(row)) }
                            let dst = gt + row * f
                            for j in 0..<f { dst[j] += w * gi[j] }
                        }
                        scatter(Int(cells.rows[k]), w00)
                        scatter(Int(cells.rows[k + 1]), w10)
                        scatter(Int(cells.rows[k + 2]), w01)
                        scatter(Int(cells.rows[k + 3]), w11)
                    }
                    lists[l] = touched
                }
            }
            withExtendedLifetime(cells) {}
            for list in perLevel { tracker.append(list) }
        }
    }
}

/// Every (point, level) cell of one `hashGridEncode` call: the table rows of its four vertices
/// (00, 10, 01, 11: x then y) and the fractional position in the cell, computed once by the
/// forward pass and read again by the backward pass.
package final class HashGridCells: @unchecked Sendable {
    let levels: Int
    /// (N, L, 4) absolute table rows (level offset included).
    let rows: UnsafeMutablePointer<Int32>
    /// (N, L, 2) the fractional position (fx, fy) in the cell.
    let fractions: UnsafeMutablePointer<Float>

    /// Points ahead whose rows the forward and backward loops prefetch (a point of the forward
    /// reads 4·L rows, one of a level's backward only 4, so the backward looks further ahead).
    static let forwardDistance = 2
    static let backwardDistance = 8

    /// Levels whose rows span more than ~1 MiB (most of a core's L2): the ones that miss the
    /// caches and are worth prefetching.
    package static func farLevels(_ layout: HashGridLayout) -> [Int] {
        (0..<layout.levels).filter { layout.sizes[$0] * layout.featuresPerLevel * 4 > 1 << 20 }
    }

    /// - Parameter coords: (N, 2) points (x, y) in [0, 1].
    init(coords: Tensor, layout: HashGridLayout) {
        let n = coords.shape[0], levels = layout.levels
        self.levels = levels
        rows = .allocate(capacity: Swift.max(1, n * levels * 4))
        fractions = .allocate(capacity: Swift.max(1, n * levels * 2))
        let pc = coords.ptr, rows = rows, fractions = fractions
        let scales = layout.scales, res = layout.resolutions, sizes = layout.sizes, offsets = layout.offsets
        let dense = (0..<levels).map { layout.isDense($0) }
        Parallel.forRanges(n, grain: 512) { range in
            for i in range {
                let x = pc[2 * i], y = pc[2 * i + 1]
                for l in 0..<levels {
                    let px = x * scales[l] + 0.5, py = y * scales[l] + 0.5
                    let fx0 = px.rounded(.down), fy0 = py.rounded(.down)
                    let cx = Int(fx0), cy = Int(fy0)
                    let r = res[l], s = sizes[l], off = offsets[l], dn = dense[l]
                    let k = (i * levels + l) * 4
                    rows[k] = Int32(off + Tensor.gridIndex(cx, cy, res: r, size: s, dense: dn))
                    rows[k + 1] = Int32(off + Tensor.gridIndex(cx + 1, cy, res: r, size: s, dense: dn))
                    rows[k + 2] = Int32(off + Tensor.gridIndex(cx, cy + 1, res: r, size: s, dense: dn))
                    rows[k + 3] = Int32(off + Tensor.gridIndex(cx + 1, cy + 1, res: r, size: s, dense: dn))
                    fractions[(i * levels + l) * 2] = px - fx0
                    fractions[(i * levels + l) * 2 + 1] = py - fy0
                }
            }
        }
    }

    deinit {
        rows.deallocate()
        fractions.deallocate()
    }

    /// Index of the first of the four rows of point `i` at level `l`.
    @inline(__always) func slot(_ i: Int, _ l: Int) -> Int { (i * levels + l) * 4 }

    /// The bilinear weights of the vertices 00, 10, 01, 11.
    @inline(__always) func weights(_ i: Int, _ l: Int) -> (Float, Float, Float, Float) {
        let fx = fractions[(i * levels + l) * 2], fy = fractions[(i * levels + l) * 2 + 1]
        return ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)
    }
}
