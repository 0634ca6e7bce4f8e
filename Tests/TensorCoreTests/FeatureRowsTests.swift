import Testing

@testable import TensorCore

@Suite("FeatureRows (view features kept in fp32, bf16 or int8)")
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

    /// The int8 rule written out here independently: per channel μ and σ of the first `first`
    /// rows (fp64 sums in row order, σ floored at 1e-3 of the largest), y = (x − μ) · (1 / σ),
    /// per row s = max|y| / 127, q = round(y · 127 / max|y|) to nearest even, value q · s · σ + μ.
    static func int8Reference(_ x: [Float], cols c: Int, first: Int) -> (values: [Float], bound: [Float]) {
        var mean = [Double](repeating: 0, count: c), ss = [Double](repeating: 0, count: c)
        for r in 0..<first { for j in 0..<c { mean[j] += Double(x[r * c + j]) } }
        mean = mean.map { $0 / Double(first) }
        for r in 0..<first { for j in 0..<c { ss[j] += (Double(x[r * c + j]) - mean[j]) * (Double(x[r * c + j]) - mean[j]) } }
        let std = ss.map { ($0 / Double(first)).squareRoot() }
        let top = std.max()!
        let mu = mean.map { Float($0) }, sigma = std.map { top > 0 ? Float(max($0, 1e-3 * top)) : 1 }
        var out = [Float](repeating: 0, count: x.count), bound = out
        for r in 0..<(x.count / c) {
            let y = (0..<c).map { (x[r * c + $0] - mu[$0]) * (1 / sigma[$0]) }
            let m = y.map { abs($0) }.max()!
            let k: Float = m > 0 ? 127 / m : 0
            for j in 0..<c {
                out[r * c + j] = Float(Int8((y[j] * k).rounded(.toNearestOrEven))) * (m / 127) * sigma[j] + mu[j]
                bound[r * c + j] = 0.5 * (m / 127) * sigma[j] * (1 + 1e-4) + 1e-6 * (abs(x[r * c + j]) + abs(mu[j]))
            }
        }
        return (out, bound)
    }

    @Test("int8 keeps each value within half a step (row scale × channel scale), written block by block")
    func int8() {
        var rng = RandomGenerator(seed: 6)
        let t = Tensor.normal([30, 50], std: 3, rng: &rng)  // (rows, C), C not a multiple of 16
        var x = t.scalars
        for r in 0..<30 { x[r * 50 + 5] += 40 }  // a channel with a large offset in every row
        x[9 * 50 + 3] = 400  // a high-norm token: coarsens its own row only
        for j in 0..<50 { x[11 * 50 + j] *= 1e-6 }  // a near-zero row: fine steps of its own
        let src = Tensor(x, shape: [30, 50])
        let rows = FeatureRows(rows: 30, cols: 50, element: .int8)
        let zeros = rows.copyRows(0..<2).scalars
        #expect(zeros == [Float](repeating: 0, count: 100))  // nothing written yet reads as zeros
        rows.setRows(0, from: src.slice(axis: 0, 0..<8))  // the first block sets μ and σ
        rows.setRows(8, from: src.slice(axis: 0, 8..<30).reshape([2, 11, 50]))  // any shape ending in C
        #expect(rows.bytes == 30 * 50 + 30 * 4 + 50 * 12)
        let back = rows.copyRows(0..<30).scalars
        let (expected, bound) = Self.int8Reference(x, cols: 50, first: 8)
        #expect(back == expected)
        let over = (0..<x.count).filter { abs(back[$0] - x[$0]) > bound[$0] }
        #expect(over.isEmpty, "values outside half a step: \(over.prefix(5))")
        // Gathers are the same dequantised rows, in either order and on the worker path.
        let idx = [29, 0, 9, 9, 4, 11]
        let deq = Tensor(back, shape: [30, 50])
        #expect(rows.gatherRows(idx).scalars == deq.gatherRows(idx).scalars)
        let many = (0..<6000).map { ($0 * 7) % 30 }
        #expect(rows.gatherRows(many).scalars == deq.gatherRows(many).scalars)
        // One block: the channel statistics of all rows.
        #expect(FeatureRows(src, element: .int8).copyRows(0..<30).scalars == Self.int8Reference(x, cols: 50, first: 30).values)
    }

    @Test("int8: a channel constant in the first block and a row equal to the offsets")
    func int8Edges() {
        var rng = RandomGenerator(seed: 8)
        var x = Tensor.normal([12, 20], std: 1, rng: &rng).scalars
        for r in 0..<4 { x[r * 20 + 2] = 5 }  // channel 2 constant in the first block: σ floored
        let rows = FeatureRows(rows: 12, cols: 20, element: .int8)
        rows.setRows(0, from: Tensor(Array(x[0..<80]), shape: [4, 20]))
        rows.setRows(4, from: Tensor(Array(x[80...]), shape: [8, 20]))
        let (expected, bound) = Self.int8Reference(x, cols: 20, first: 4)
        let back = rows.copyRows(0..<12).scalars
        #expect(back == expected)
        #expect((0..<x.count).allSatisfy { abs(back[$0] - x[$0]) <= bound[$0] })
        let constant = FeatureRows(Tensor([Float](repeating: 3, count: 40), shape: [2, 20]), element: .int8)
        #expect(constant.copyRows(0..<2).scalars == [Float](repeating: 3, count: 40))  // σ = 1, rows at μ: scale 0
    }

    @Test("int8 over many rows (the worker path of setRows) equals the rule row by row")
    func int8ManyRows() {
        var rng = RandomGenerator(seed: 7)
        let t = Tensor.normal([3000, 64], std: 1, rng: &rng)
        let rows = FeatureRows(t, element: .int8)
        #expect(rows.copyRows(0..<3000).scalars == Self.int8Reference(t.scalars, cols: 64, first: 3000).values)
    }
}
