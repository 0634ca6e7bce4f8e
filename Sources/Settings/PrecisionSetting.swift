import TensorCore

extension DVTSettings.Run {
    /// `precision` as the engine's type (the schema allows only fp32 and bf16; fp32 when unset).
    public var computePrecision: Precision {
        precision.flatMap { Precision(rawValue: $0) } ?? .fp32
    }
}
