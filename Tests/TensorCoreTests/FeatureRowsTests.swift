import Testing

@testable import TensorCore

@Suite("FeatureRows (view features kept in fp32 or bf16)")
struct FeatureRowsTests {
    @Test("fp32 wraps the tensor: gathers are exact copies of its rows")
    func fp32() {
        var rng = RandomGenerator(seed: 4)
        let t = Tensor.normal([3, 5, 37], std: 2, rng: &rng)  // 15 rows of 37 (not a multiple of 16)
        let rows = FeatureRows(t, element: .fp32)
        #expect(rows.rows == 15 && rows.cols == 37 && rows.bytes == 15 * 37 * 4)
        let idx = [14, 0, 7, 7, 3]
        #expect(rows.gatherRows(idx).scalars == t.reshape([15, 37]).gatherRows(idx).scalars)
        #expect(rows.copyRows(2..<5).scalars == Array(t.scalars[(2 * 37)..<(5 * 37)]))
    }

    @Test("bf16 keeps each value's bf16 rounding (nearest even), written block by block")
    func bf16() {
        var rng = RandomGenerator(seed: 5)
        let t = Tensor.normal([20, 50], std: 3, rng: &rng)  // (rows, C)
        let rows = FeatureRows(rows: 20, cols: 50, element: .bf16)
        rows.setRows(0, from: t.slice(axis: 0, 0..<8))
        rows.setRows(8, from: t.slice(axis: 0, 8..<20).reshape([3, 4, 50]))  // any shape ending in C
        #expect(rows.bytes == 20 * 50 * 2)
        let rounded = t.roundedToBF16()
        let idx = [19, 0, 8, 7, 19]
        #expect(rows.gatherRows(idx).scalars == rounded.gatherRows(idx).scalars)
        #expect(rows.copyRows(0..<20).scalars == rounded.scalars)
        #expect(FeatureRows(t, element: .bf16).copyRows(0..<20).scalars == rounded.scalars)
        // Large gathers take the worker path; same values.
        let many = (0..<6000).map { $0 % 20 }
        #expect(rows.gatherRows(many).scalars == rounded.gatherRows(many).scalars)
    }
}
