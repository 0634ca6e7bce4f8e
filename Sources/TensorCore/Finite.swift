/// Finite-value checks, for validating inputs where they are read: one NaN in a feature map would
/// otherwise spread into a fully NaN output with exit 0.
extension Tensor {
    /// The multi-index of the first NaN or ±Inf element in row-major order, or nil when all are
    /// finite. Returns the index rather than a flag so that errors can name where the bad value is.
    public func firstNonFinite() -> (index: [Int], value: Float)? {
        let flat: Int? = withUnsafeBufferPointer { b in
            for i in 0..<b.count where !b[i].isFinite { return i }
            return nil
        }
        guard let flat else { return nil }
        var index = [Int](repeating: 0, count: shape.count), rest = flat
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            index[d] = rest % shape[d]
            rest /= shape[d]
        }
        return (index, withUnsafeBufferPointer { $0[flat] })
    }
}

/// A NaN or ±Inf in an input, with where it came from and where it is.
public struct NonFiniteError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Tensor {
    /// Throws `NonFiniteError` naming `source` (a file, or file and tensor name), the first bad
    /// value, its index and the shape, when any element is NaN or ±Inf.
    public func requireFinite(_ source: String) throws {
        if let bad = firstNonFinite() {
            throw NonFiniteError("\(source): non-finite value \(bad.value) at index \(bad.index) of shape \(shape)")
        }
    }
}
