import TensorCore

/// A layer or model: something that owns named parameters.
///
/// Names are the checkpoint keys (timm / PyTorch state-dict names, e.g. `blocks.0.attn.qkv.weight`),
/// so loading a safetensors file is a dictionary lookup. Parents prefix their children's names.
public protocol Module: AnyObject {
    /// Every parameter with its dotted state-dict name, in a stable order.
    func namedParameters() -> [(String, Tensor)]
}

extension Module {
    /// Parameters that currently take gradients (frozen ones are skipped).
    public func trainableParameters() -> [(String, Tensor)] {
        namedParameters().filter { $0.1.requiresGrad }
    }

    /// Drops every parameter's accumulated gradient.
    public func zeroGrad() {
        for (_, p) in namedParameters() { p.zeroGrad() }
    }

    /// The parameters as a name → tensor dictionary (shares storage).
    public func stateDict() -> [String: Tensor] {
        Dictionary(namedParameters().map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// Total number of parameter elements.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.count } }
}

/// Prefixes child parameter names: `prefixed("blocks.0", child)` → `blocks.0.attn.qkv.weight`.
public func prefixed(_ prefix: String, _ params: [(String, Tensor)]) -> [(String, Tensor)] {
    params.map { (prefix.isEmpty ? $0.0 : "\(prefix).\($0.0)", $0.1) }
}
