// Movement ops: reshape (a view), permute/transpose, slice, concat, row gather/scatter-add.

extension Tensor {
    /// A view with a new shape over the same storage. One dimension may be -1.
    public func reshape(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot infer -1 in \(newShape) from \(shape)")
            s[i] = count / known
        }
        precondition(
            s.reduce(1, *) == count && s.allSatisfy { $0 >= 0 },
            "reshape: \(shape) (\(count) elements) cannot become \(newShape)")
        let out = Tensor(sharing: storage, offset: offset, shape: s)
        return out.record("reshape", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr
            for i in 0..<g.count { gx[i] += pg[i] }
        }
    }

    /// Reorders dimensions: `out.shape[i] = shape[order[i]]`. Copies.
    public func permute(_ order: [Int]) -> Tensor {
        precondition(order.count == rank && Set(order) == Set(0..<rank), "permute: \(order) is not a permutation of rank \(rank)")
        let outShape = order.map { shape[$0] }
        let inStrides = Shape.strides(shape)
        let gathered = order.map { inStrides[$0] }  // stride in the input for each output dim
        let out = Tensor.uninitialized(outShape)
        let po = out.ptr, px = ptr
        Shape.forEachRow(outShape, gathered, gathered) { o, oi, _, n, ri, _ in
            for k in 0..<n { po[o + k] = px[oi + k * ri] }
        }
        return out.record("permute", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr
            Shape.forEachRow(outShape, gathered, gathered) { o, oi, _, n, ri, _ in
                for k in 0..<n { gx[oi + k * ri] += pg[o + k] }
            }
        }
    }

    /// Swaps two dimensions. Copies.
    public func transpose(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(Shape.axis(a, rank: rank), Shape.axis(b, rank: rank))
        return permute(order)
    }

    /// Elements `range` along `axis`. Copies.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = Shape.axis(axis, rank: rank, op: "slice")
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[ax],
            "slice: range \(range) out of bounds for axis \(ax) of shape \(shape)")
        var outShape = shape
        outShape[ax] = range.count
        let outer = shape[..<ax].reduce(1, *)
        let inner = shape[(ax + 1)...].reduce(1, *)
        let inRow = shape[ax] * inner, outRow = range.count * inner
        let start = range.lowerBound * inner
        let out = Tensor.uninitialized(outShape)
        let po = out.ptr, px = ptr
        for o in 0..<outer {
            (po + o * outRow).update(from: px + o * inRow + start, count: outRow)
        }
        return out.record("slice", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr
            for o in 0..<outer {
                let d = gx + o * inRow + start, s = pg + o * outRow
                for k in 0..<outRow { d[k] += s[k] }
            }
        }
    }

    /// Concatenates along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of no tensors")
        let r = parts[0].rank
        let ax = Shape.axis(axis, rank: r, op: "concat")
        for p in parts {
            precondition(
                p.rank == r && (0..<r).allSatisfy { $0 == ax || p.shape[$0] == parts[0].shape[$0] },
                "concat: shapes \(parts.map(\.shape)) disagree outside axis \(ax)")
        }
        var outShape = parts[0].shape
        outShape[ax] = parts.map { $0.shape[ax] }.reduce(0, +)
        let outer = outShape[..<ax].reduce(1, *)
        let inner = outShape[(ax + 1)...].reduce(1, *)
        let outRow = outShape[ax] * inner
        let out = Tensor.uninitialized(outShape)
        let po = out.ptr
        var starts: [Int] = []
        var pos = 0
        for p in parts {
            starts.append(pos)
            let row = p.shape[ax] * inner
            let px = p.ptr
            for o in 0..<outer { (po + o * outRow + pos).update(from: px + o * row, count: row) }
            pos += row
        }
        return out.record("concat", parts) { g in
            let pg = g.ptr
            for (p, start) in zip(parts, starts) where p.requiresGrad {
                let row = p.shape[ax] * inner
                let gx = p.gradBuffer()
                for o in 0..<outer {
                    let d = gx + o * row, s = pg + o * outRow + start
                    for k in 0..<row { d[k] += s[k] }
                }
            }
        }
    }

    /// Rows of a (R, C) tensor: out[i] = self[indices[i]]. Backward is a scatter-add.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        precondition(rank == 2, "gatherRows needs a (R, C) tensor, got \(shape)")
        let rows = shape[0], c = shape[1]
        for i in indices { precondition(i >= 0 && i < rows, "gatherRows: index \(i) out of range 0..<\(rows)") }
        let out = Tensor.uninitialized([indices.count, c])  // (n, C)
        let po = out.ptr, px = ptr
        indices.withUnsafeBufferPointer { idx in
            // Workers only for gathers of ≥ 2^18 floats (1 MB) a piece: waking one costs more than
            // copying less (stage 1 gathers a (2048, C) batch every step, often with small C).
            Parallel.forRanges(idx.count, grain: max(1, (1 << 18) / max(c, 1))) { r in
                for i in r { (po + i * c).update(from: px + idx[i] * c, count: c) }
            }
        }
        return out.record("gatherRows", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr
            // Sequential: repeated indices would race if split across threads.
            for (i, row) in indices.enumerated() {
                let d = gx + row * c, s = pg + i * c
                for k in 0..<c { d[k] += s[k] }
            }
        }
    }

    /// A (rows, C) tensor with self's rows added at `indices`: out[indices[i]] += self[i].
    public func scatterAddRows(_ indices: [Int], rows: Int) -> Tensor {
        precondition(
            rank == 2 && shape[0] == indices.count,
            "scatterAddRows: need (\(indices.count), C) for \(indices.count) indices, got \(shape)")
        let c = shape[1]
        for i in indices { precondition(i >= 0 && i < rows, "scatterAddRows: index \(i) out of range 0..<\(rows)") }
        let out = Tensor(zeros: [rows, c])  // (R, C)
        let po = out.ptr, px = ptr
        for (i, row) in indices.enumerated() {
            let d = po + row * c, s = px + i * c
            for k in 0..<c { d[k] += s[k] }
        }
        return out.record("scatterAddRows", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr
            for (i, row) in indices.enumerated() {
                let d = gx + i * c, s = pg + row * c
                for k in 0..<c { d[k] += s[k] }
            }
        }
    }

    /// Materialises a broadcast to `newShape` (copies).
    public func broadcast(to newShape: [Int]) -> Tensor {
        precondition(Shape.broadcast(shape, newShape) == newShape, "broadcast: \(shape) cannot broadcast to \(newShape)")
        return self + Tensor(zeros: newShape)
    }
}
