import Foundation
import TensorCore
import TestSupport
import Testing

@Suite("Hash-grid encoding")
struct HashGridTests {
    /// tiny-cuda-nn's level geometry, recomputed here step by step in float32 as
    /// include/tiny-cuda-nn/common_device.h (`grid_scale`, `grid_resolution`) and
    /// encodings/grid.h (`params_in_level`, rounded up to 8, capped at the table) do it.
    static func float32Geometry(
        levels: Int, log2Table: Int, base: Int, finest: Int
    )
        -> (res: [Int], sizes: [Int], offsets: [Int], dense: [Bool])
    {
        let perLevelScale = Float(exp((log(Double(finest)) - log(Double(base))) / Double(levels - 1)))  // numpy float64 → JSON → float
        let log2Scale: Float = log2f(perLevelScale)
        var res: [Int] = [], sizes: [Int] = [], offsets = [0], dense: [Bool] = []
        for l in 0..<levels {
            let lf = Float(l)
            let scale: Float = exp2f(lf * log2Scale) * Float(base) - Float(1)
            let r = Int(ceilf(scale)) + 1
            let full = r * r, cap = 1 << log2Table
            let size = (min(full, cap) + 7) / 8 * 8
            res.append(r); sizes.append(size); offsets.append(offsets[l] + size); dense.append(full <= size)
        }
        return (res, sizes, offsets, dense)
    }

    static func expectGeometry(_ g: HashGridLayout, levels: Int, log2Table: Int, base: Int, finest: Int) {
        let e = float32Geometry(levels: levels, log2Table: log2Table, base: base, finest: finest)
        #expect(g.resolutions == e.res)
        #expect(g.sizes == e.sizes)
        #expect(g.offsets == e.offsets)
        #expect((0..<levels).map(g.isDense) == e.dense)
    }

    @Test("level geometry is tiny-cuda-nn's float32 one: DVT's default grid")
    func layoutDVTDefault() {
        // DVT defaults (dvt/models/neural_feature_field.py with main_img_denoising.py's n_levels 16):
        // 16 levels, 2^20 table, base 16, finest 1024.
        let d = HashGridLayout()
        Self.expectGeometry(d, levels: 16, log2Table: 20, base: 16, finest: 1024)
        // Pinned: float32 rounding puts levels 5, 10 and 15 just above an integer scale
        // (63.000008, 255.00009, 1023.0004), one vertex more than exact arithmetic gives.
        #expect(d.resolutions[0] == 16 && d.sizes[0] == 256)
        #expect(d.resolutions[1] == 22 && d.sizes[1] == 488)  // 484 rounded up to 488
        #expect(d.resolutions[5] == 65 && d.resolutions[10] == 257 && d.resolutions[15] == 1025)
        #expect(d.sizes[15] == 1 << 20 && !d.isDense(15))  // 1025² > 2^20: the finest level hashes
        #expect((0..<15).allSatisfy { d.isDense($0) })
        #expect(d.offsets[1] == 256 && d.offsets[2] == 256 + 488 && d.totalRows == 2_467_720)
    }

    @Test("level geometry is tiny-cuda-nn's float32 one: planted and small grids")
    func layoutSmall() {
        // The planted benchmark's grid: 8 levels, 2^16, base 16, finest 256 (every level dense).
        let p = HashGridLayout(levels: 8, featuresPerLevel: 8, log2TableSize: 16, baseResolution: 16, finestResolution: 256)
        Self.expectGeometry(p, levels: 8, log2Table: 16, base: 16, finest: 256)
        #expect(p.resolutions == [16, 24, 36, 53, 79, 116, 173, 256])
        #expect(p.totalRows == 120_120 && (0..<8).allSatisfy { p.isDense($0) })
        // A small table forces hashing on the fine levels.
        let s = HashGridLayout(levels: 4, featuresPerLevel: 2, log2TableSize: 8, baseResolution: 4, finestResolution: 64)
        Self.expectGeometry(s, levels: 4, log2Table: 8, base: 4, finest: 64)
        #expect(s.resolutions == [4, 11, 26, 64])  // scales 3, 9.08, 24.4, 63
        #expect(s.sizes == [16, 128, 256, 256])
        #expect(s.isDense(0) && s.isDense(1) && !s.isDense(2) && !s.isDense(3))
        #expect(s.totalRows == 16 + 128 + 256 + 256)
    }

    /// The four table rows and bilinear weights of point (x, y) at one level, written
    /// independently of the kernel (the naive forward and scatter-add share it).
    static func naiveCorners(_ lay: HashGridLayout, level l: Int, _ x: Float, _ y: Float) -> [(row: Int, weight: Double)] {
        let s = lay.scales[l]
        let px = x * s + 0.5, py = y * s + 0.5
        let x0 = Int(px.rounded(.down)), y0 = Int(py.rounded(.down))
        let fx = px - Float(x0), fy = py - Float(y0)
        let res = lay.resolutions[l], size = lay.sizes[l]
        return [(0, 0), (1, 0), (0, 1), (1, 1)].map { (dx, dy) in
            let cx = x0 + dx, cy = y0 + dy
            let w = Double(dx == 1 ? fx : 1 - fx) * Double(dy == 1 ? fy : 1 - fy)
            let idx: UInt64 = res * res <= size ? UInt64(cx + cy * res) : UInt64(cx) ^ (UInt64(cy) * 2_654_435_761)
            return (Int(idx % UInt64(size)) + lay.offsets[l], w)
        }
    }

    /// Straightforward reference in Double, written independently of the kernel.
    func naive(_ table: [Float], _ coords: [Float], _ lay: HashGridLayout) -> [Float] {
        let f = lay.featuresPerLevel
        var out: [Float] = []
        for i in 0..<(coords.count / 2) {
            for l in 0..<lay.levels {
                var acc = [Double](repeating: 0, count: f)
                for (row, w) in Self.naiveCorners(lay, level: l, coords[2 * i], coords[2 * i + 1]) {
                    for k in 0..<f { acc[k] += w * Double(table[row * f + k]) }
                }
                out += acc.map { Float($0) }
            }
        }
        return out
    }

    @Test("forward matches a naive implementation, dense and hashed levels")
    func forward() {
        let lay = HashGridLayout(levels: 4, featuresPerLevel: 2, log2TableSize: 8, baseResolution: 4, finestResolution: 64)
        var rng = RandomGenerator(seed: 3)
        let table = Tensor.uniform([lay.totalRows, 2], -1, 1, rng: &rng)
        var pts: [Float] = [0, 0, 1, 1, 0.5, 0.25, 1, 0]
        for _ in 0..<40 { pts.append(rng.uniform()) }
        let coords = Tensor(pts, shape: [pts.count / 2, 2])
        let out = Tensor.hashGridEncode(table, coords: coords, layout: lay)
        #expect(out.shape == [pts.count / 2, 8])
        expectClose(out.scalars, naive(table.scalars, pts, lay), rtol: 1e-5, atol: 1e-6, "hash grid forward")
    }

    @Test("table gradient is the weighted scatter-add (finite differences) and touched rows are tracked")
    func gradient() {
        let lay = HashGridLayout(levels: 3, featuresPerLevel: 2, log2TableSize: 6, baseResolution: 3, finestResolution: 20)
        var rng = RandomGenerator(seed: 4)
        let table = Tensor.uniform([lay.totalRows, 2], -1, 1, rng: &rng, requiresGrad: true)
        var pts: [Float] = []
        for _ in 0..<12 { pts.append(rng.uniform()) }
        let coords = Tensor(pts, shape: [6, 2])
        gradCheck("hashGridEncode", [table], eps: 1e-2) { Tensor.hashGridEncode($0[0], coords: coords, layout: lay) }

        table.zeroGrad()
        Tensor.hashGridEncode(table, coords: coords, layout: lay).sum().backward()
        let g = table.grad!.scalars
        let nonzeroRows = Set((0..<lay.totalRows).filter { r in g[2 * r] != 0 || g[2 * r + 1] != 0 })
        #expect(!nonzeroRows.isEmpty)
        // Every output is a convex blend, so summing outputs gives each point's level weights summing to 1.
        let total = g.reduce(0, +)
        #expect(abs(total - Float(6 * 3 * 2)) < 1e-3)
        let tracked = Set(table.grad!.touchedRows!.rows.map(Int.init))
        #expect(tracked == nonzeroRows)
        #expect(table.grad!.touchedRows!.rows.count == tracked.count)  // no duplicates
        // zeroGrad keeps the buffer but clears exactly the touched rows.
        table.zeroGrad()
        #expect(table.grad != nil)
        #expect(table.grad!.scalars.allSatisfy { $0 == 0 })
        #expect(table.grad!.touchedRows!.rows.isEmpty)
    }

    @Test("at a size whose fine levels are prefetched, forward and backward match naive versions on 2 threads")
    func prefetchedLevels() {
        // 2^16 rows of 8 features (2 MiB) per fine level: above `HashGridCells.farLevels`' 1 MiB.
        let lay = HashGridLayout(levels: 6, featuresPerLevel: 8, log2TableSize: 16, baseResolution: 8, finestResolution: 512)
        #expect(HashGridCells.farLevels(lay).count >= 2)
        var rng = RandomGenerator(seed: 5)
        let table = Tensor.uniform([lay.totalRows, 8], -1, 1, rng: &rng, requiresGrad: true)
        var pts: [Float] = []
        for _ in 0..<(2 * 700) { pts.append(rng.uniform()) }
        let n = pts.count / 2
        let coords = Tensor(pts, shape: [n, 2])
        let upstream = Tensor.uniform([n, 6 * 8], -1, 1, rng: &rng)
        let out = Parallel.withThreads(2) { Tensor.hashGridEncode(table, coords: coords, layout: lay) }
        expectClose(out.scalars, naive(table.scalars, pts, lay), rtol: 1e-5, atol: 1e-6, "prefetched forward")
        Parallel.withThreads(2) { (out * upstream).sum().backward() }
        // Naive scatter-add in Double.
        var expected = [Double](repeating: 0, count: lay.totalRows * 8)
        let g = upstream.scalars
        for i in 0..<n {
            for l in 0..<lay.levels {
                for (row, w) in Self.naiveCorners(lay, level: l, pts[2 * i], pts[2 * i + 1]) {
                    for k in 0..<8 { expected[row * 8 + k] += w * Double(g[i * 48 + l * 8 + k]) }
                }
            }
        }
        expectClose(table.grad!.scalars, expected.map { Float($0) }, rtol: 1e-4, atol: 1e-5, "prefetched backward")
        let nonzeroRows = Set((0..<lay.totalRows).filter { r in (0..<8).contains { expected[r * 8 + $0] != 0 } })
        #expect(Set(table.grad!.touchedRows!.rows.map(Int.init)) == nonzeroRows)
        // One thread gives the same bits: every output and every gradient row has one writer.
        let grad2 = table.grad!.scalars
        table.zeroGrad()
        let out1 = Parallel.withThreads(1) { Tensor.hashGridEncode(table, coords: coords, layout: lay) }
        #expect(out1.scalars == out.scalars)
        Parallel.withThreads(1) { (out1 * upstream).sum().backward() }
        #expect(table.grad!.scalars == grad2)
    }
}
