import Foundation
import Testing
import TensorCore
import TestSupport

@Suite("Hash-grid encoding")
struct HashGridTests {
    @Test("level geometry follows tiny-cuda-nn (counts and offsets)")
    func layout() {
        // DVT defaults: 16 levels, 2^20 table, base 16, finest 1024.
        let d = HashGridLayout()
        #expect(d.resolutions[0] == 16 && d.sizes[0] == 256)          // scale 15 → res 16, 16² = 256
        #expect(d.resolutions[1] == 22 && d.sizes[1] == 488)          // scale 20.11 → res 22, 484 → rounded up to 488
        #expect(d.resolutions[15] == 1024 && d.sizes[15] == 1 << 20)  // scale 1023 → res 1024, exactly the cap
        #expect((0..<16).allSatisfy { d.isDense($0) })                // 1024² fits 2^20, so no level hashes
        #expect(d.offsets[1] == 256 && d.offsets[2] == 256 + 488)
        // A small table forces hashing on the fine levels.
        let s = HashGridLayout(levels: 4, featuresPerLevel: 2, log2TableSize: 8, baseResolution: 4, finestResolution: 64)
        #expect(s.resolutions == [4, 11, 26, 64])  // scales 3, 9.08, 24.4, 63
        #expect(s.sizes == [16, 128, 256, 256])
        #expect(s.isDense(0) && s.isDense(1) && !s.isDense(2) && !s.isDense(3))
        #expect(s.totalRows == 16 + 128 + 256 + 256)
    }

    /// Straightforward reference in Double, written independently of the kernel.
    func naive(_ table: [Float], _ coords: [Float], _ lay: HashGridLayout) -> [Float] {
        let f = lay.featuresPerLevel
        var out: [Float] = []
        for i in 0..<(coords.count / 2) {
            for l in 0..<lay.levels {
                let s = lay.scales[l]
                let px = coords[2 * i] * s + 0.5, py = coords[2 * i + 1] * s + 0.5
                let x0 = Int(px.rounded(.down)), y0 = Int(py.rounded(.down))
                let fx = px - Float(x0), fy = py - Float(y0)
                var acc = [Double](repeating: 0, count: f)
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let x = x0 + dx, y = y0 + dy
                    let w = Double(dx == 1 ? fx : 1 - fx) * Double(dy == 1 ? fy : 1 - fy)
                    let res = lay.resolutions[l], size = lay.sizes[l]
                    let idx: UInt64 = res * res <= size ? UInt64(x + y * res) : UInt64(x) ^ (UInt64(y) * 2_654_435_761)
                    let row = Int(idx % UInt64(size)) + lay.offsets[l]
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
}
