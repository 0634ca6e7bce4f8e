// Reductions. Backward of a sum is a broadcast of the output gradient back to the input shape.

extension Tensor {
    /// dst[j] += Σ src[i] over every index i of `shape` that broadcasts from j, where `strides`
    /// are dst's strides broadcast to `shape` (0 along the summed axes). A row whose destination
    /// stride is 0 is summed left to right, then added once.
    @inline(__always)
    static func addSummed(
        _ src: UnsafeMutablePointer<Float>, shape: [Int], into dst: UnsafeMutablePointer<Float>, strides: [Int]
    ) {
        Shape.forEachRow(shape, strides, strides) { o, od, _, n, rd, _ in
            if rd == 0 {
                var s: Float = 0
                for k in 0..<n { s += src[o + k] }
                dst[od] += s
            } else {
                for k in 0..<n { dst[od + k * rd] += src[o + k] }
            }
        }
    }

    /// Sum over `axes` (negative axes count from the end). `keepDims` keeps them as size 1.
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let r = rank
        let ax = Set(axes.map { Shape.axis($0, rank: r, op: "sum") })
        let kept = shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let outShape = keepDims ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let out = Tensor(zeros: outShape)
        let po = out.ptr, px = ptr
        let so = Shape.broadcastStrides(kept, to: shape)
        if ax.count == 1, let a = ax.first, a == r - 1 {
            // Row sums: the common case (losses, layer statistics).
            let n = shape[r - 1]
            let rows = n == 0 ? 0 : count / n
            Parallel.forRanges(rows, grain: max(1, 4096 / max(n, 1))) { rr in
                for row in rr {
                    var s: Float = 0
                    let base = px + row * n
                    for k in 0..<n { s += base[k] }
                    po[row] = s
                }
            }
        } else {
            Tensor.addSummed(px, shape: shape, into: po, strides: so)
        }
        let inShape = shape
        return out.record("sum", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr
            Shape.forEachRow(inShape, so, so) { o, oo, _, n, ro, _ in
                for k in 0..<n { gx[o + k] += pg[oo + k * ro] }
            }
        }
    }

    /// Sum of all elements, as a scalar tensor.
    public func sum() -> Tensor {
        let n = count
        let px = ptr
        var total: Double = 0
        for i in 0..<n { total += Double(px[i]) }
        return Tensor.scalar(Float(total)).record("sumAll", [self]) { g in
            let v = g.ptr[0]
            let gx = self.gradBuffer()
            Parallel.forRanges(n, grain: 1 << 15) { r in
                for i in r { gx[i] += v }
            }
        }
    }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[Shape.axis($0, rank: rank, op: "mean")] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(max(n, 1)))
    }

    /// Mean of all elements, as a scalar tensor.
    public func mean() -> Tensor { sum() * (1 / Float(max(count, 1))) }
}
