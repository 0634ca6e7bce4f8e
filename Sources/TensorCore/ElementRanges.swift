// Bounds-checked bulk access to flat element ranges, for code above TensorCore that packs,
// unpacks or fills tensors (gradient buffers, generated data) without touching their memory.
// None of these record autodiff history.

extension Tensor {
    /// A copy of the elements in `range` (row-major flat indices).
    public func elements(_ range: Range<Int>) -> [Float] {
        checkRange(range)
        return Array(UnsafeBufferPointer(start: ptr + range.lowerBound, count: range.count))
    }

    /// Writes `values` into elements `offset ..< offset + values.count`.
    public func setElements(_ values: [Float], at offset: Int = 0) {
        checkRange(offset..<(offset + values.count))
        storage.version &+= 1  // prepared copies of this tensor (MatMulPrepared) are stale now
        values.withUnsafeBufferPointer { v in
            if !v.isEmpty { (ptr + offset).update(from: v.baseAddress!, count: v.count) }
        }
    }

    /// Copies `src`'s elements `range` into this tensor starting at element `offset`, each
    /// multiplied by `scale` when one is given (one rounding, as `x * scale`).
    public func copyElements(from src: Tensor, _ range: Range<Int>, to offset: Int = 0, scale: Float? = nil) {
        src.checkRange(range)
        checkRange(offset..<(offset + range.count))
        storage.version &+= 1  // as in setElements
        let s = src.ptr + range.lowerBound, d = ptr + offset
        if let scale {
            for i in 0..<range.count { d[i] = s[i] * scale }
        } else if !range.isEmpty {
            d.update(from: s, count: range.count)
        }
    }

    /// Sets elements `range` to `value`.
    public func fill(_ value: Float, _ range: Range<Int>) {
        checkRange(range)
        (ptr + range.lowerBound).update(repeating: value, count: range.count)
    }

    func checkRange(_ r: Range<Int>) {
        precondition(r.lowerBound >= 0 && r.upperBound <= count, "element range \(r) outside 0..<\(count) of shape \(shape)")
    }
}
