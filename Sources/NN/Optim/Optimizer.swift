import TensorCore

/// Something that updates parameters from their accumulated gradients.
///
/// State (moments, step counts) is keyed by parameter *name*, the same dotted state-dict names
/// the modules use, so a checkpoint can hold it next to the weights and a run can resume.
public protocol Optimizer: AnyObject {
    /// Learning rate used by the next `step()`; schedules set it before every step.
    var lr: Double { get set }
    /// The named parameters this optimiser owns, in a stable order.
    var parameters: [(String, Tensor)] { get }
    /// Updates every parameter that requires grad and has a gradient.
    func step()
    /// The optimiser state as name → tensor (copies), step counts included as tensors.
    func stateDict() -> [String: Tensor]
    /// Restores `stateDict()` output. Throws `OptimizerStateError` naming every bad key,
    /// leaving the current state untouched when anything is wrong.
    func loadStateDict(_ state: [String: Tensor]) throws
}

extension Optimizer {
    /// Drops every owned parameter's gradient (torch's `zero_grad(set_to_none=True)`).
    public func zeroGrad() {
        for (_, p) in parameters { p.zeroGrad() }
    }
}

/// A checkpointed optimiser state that doesn't fit this optimiser.
public struct OptimizerStateError: Error, CustomStringConvertible, Equatable {
    /// Keys a parameter's state needs that the dictionary lacks.
    public var missing: [String]
    /// Keys that belong to no parameter of this optimiser (or to a mode it isn't in).
    public var unexpected: [String]
    /// Keys present with the wrong shape: (key, expected shape, found shape).
    public var mismatched: [Mismatch]
    /// Step-count keys whose value is not a non-negative whole number.
    public var invalid: [String]

    public init(missing: [String] = [], unexpected: [String] = [], mismatched: [Mismatch] = [], invalid: [String] = []) {
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.invalid = invalid
    }

    public typealias Mismatch = ShapeMismatch

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty && invalid.isEmpty }

    public var description: String {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing keys: \(missing.joined(separator: ", "))") }
        if !unexpected.isEmpty { parts.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
        if !mismatched.isEmpty {
            parts.append(
                "mis-shaped keys: \(mismatched.map { "\($0.key): expected shape \($0.expected), found \($0.found)" }.joined(separator: "; "))")
        }
        if !invalid.isEmpty { parts.append("step counts that are not whole numbers >= 0: \(invalid.joined(separator: ", "))") }
        return "optimizer state does not fit: " + parts.joined(separator: "; ")
    }
}
