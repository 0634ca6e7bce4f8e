/// Shape arithmetic shared by the broadcasting ops: numpy/torch broadcasting rules,
/// strides, and the row iterator that elementwise kernels and their reductions share.
public enum Shape {
    /// Row-major strides of a contiguous tensor.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// The broadcast of two shapes (aligned on the right), or nil when they are incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Strides for reading a tensor of shape `inShape` as if it had shape `outShape`:
    /// 0 along broadcast dimensions.
    public static func broadcastStrides(_ inShape: [Int], to outShape: [Int]) -> [Int] {
        let r = outShape.count
        let s = strides(inShape)
        var out = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let j = i - (r - inShape.count)
            if j >= 0 && inShape[j] != 1 { out[i] = s[j] }
        }
        return out
    }

    /// Normalises a possibly negative axis.
    public static func axis(_ a: Int, rank: Int, op: String = #function) -> Int {
        let ax = a < 0 ? a + rank : a
        precondition(ax >= 0 && ax < max(rank, 1), "\(op): axis \(a) out of range for rank \(rank)")
        return ax
    }

    /// Walks the output of a broadcast op one innermost row at a time, calling
    /// `body(outOffset, aOffset, bOffset, rowLength, aRowStride, bRowStride)`.
    @inline(__always)
    static func forEachRow(
        _ shape: [Int], _ sa: [Int], _ sb: [Int],
        _ body: (Int, Int, Int, Int, Int, Int) -> Void
    ) {
        let r = shape.count
        if r == 0 { body(0, 0, 0, 1, 0, 0); return }
        let n = shape[r - 1]
        if n == 0 { return }
        let rows = shape.dropLast().reduce(1, *)
        if rows == 0 { return }
        var idx = [Int](repeating: 0, count: max(r - 1, 0))
        var oa = 0, ob = 0
        for row in 0..<rows {
            body(row * n, oa, ob, n, sa[r - 1], sb[r - 1])
            // odometer increment over the outer dims
            var d = r - 2
            while d >= 0 {
                idx[d] += 1
                oa += sa[d]
                ob += sb[d]
                if idx[d] < shape[d] { break }
                oa -= sa[d] * shape[d]
                ob -= sb[d] * shape[d]
                idx[d] = 0
                d -= 1
            }
        }
    }
}
