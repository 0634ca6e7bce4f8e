// Batches and their items: the per-image maps of a batched forward, and the batch of a list.

extension Tensor {
    /// The items of a batch along axis 0: (B, ...) → B tensors of shape (...). Copies; the
    /// backward (through `slice`) adds each item's gradient into its row of the batch.
    public func unbatched() -> [Tensor] {
        precondition(rank >= 1, "unbatched needs a batch axis, got shape \(shape)")
        let item = Array(shape.dropFirst())
        return (0..<shape[0]).map { slice(axis: 0, $0..<($0 + 1)).reshape(item) }
    }

    /// Items of one shape stacked on a new axis 0: B tensors of shape (...) → (B, ...). Copies.
    public static func batched(_ items: [Tensor]) -> Tensor {
        precondition(!items.isEmpty, "batched of no tensors")
        return concat(items.map { $0.reshape([1] + $0.shape) }, axis: 0)
    }
}
