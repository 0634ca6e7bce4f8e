import Foundation
import TensorCore

// A small builder for ONNX graphs: named initializers (float32 weights under the names of their
// source layout), nodes of the default ("ai.onnx") domain, graph inputs and outputs with fixed or
// named (dynamic) dimensions, and the model's metadata_props. It holds a plain description of the
// graph; `OnnxModelWriter.swift` turns it into the ModelProto of the generated protobuf code.
// Every value is named by a string, as in ONNX itself; the builder makes node output names unique.

/// An ONNX tensor element type (TensorProto.DataType numbers).
public enum OnnxElementType: Int32, Sendable {
    case float = 1
    case int64 = 7
}

/// One dimension of a graph input or output: a number, or a symbolic name (a dynamic axis).
public enum OnnxDimension: Sendable, Equatable {
    case fixed(Int)
    case named(String)
}

/// A node attribute value (AttributeProto), the kinds the exporters use.
public enum OnnxAttribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
}

/// A graph under construction. Value names are strings; `node` returns the names of its outputs.
public struct OnnxGraphBuilder: Sendable {
    public struct Node: Sendable {
        public var opType: String
        public var inputs: [String]
        public var outputs: [String]
        public var name: String
        public var attributes: [(String, OnnxAttribute)]
    }

    public struct Initializer: Sendable {
        public var name: String
        public var dims: [Int]
        public var type: OnnxElementType
        /// Little-endian element bytes (TensorProto.raw_data).
        public var bytes: Data
    }

    public struct ValueInfo: Sendable {
        public var name: String
        public var type: OnnxElementType
        public var dims: [OnnxDimension]
    }

    public let name: String
    public private(set) var nodes: [Node] = []
    public private(set) var initializers: [Initializer] = []
    public private(set) var inputs: [ValueInfo] = []
    public private(set) var outputs: [ValueInfo] = []
    /// metadata_props, in insertion order.
    public private(set) var metadata: [(String, String)] = []
    /// Name prefix of the nodes added now (e.g. "denoiser/attn"), for readable graphs.
    public var scope = ""

    private var taken: Set<String> = []
    private var counter = 0
    private var int64Constants: [String: String] = [:]

    public init(name: String) {
        self.name = name
    }

    /// A name not used yet, from `hint` (numbered when taken).
    mutating func unique(_ hint: String) -> String {
        let base = scope.isEmpty ? hint : "\(scope)/\(hint)"
        var candidate = base
        while taken.contains(candidate) {
            counter += 1
            candidate = "\(base)_\(counter)"
        }
        taken.insert(candidate)
        return candidate
    }

    /// Declares a graph input.
    @discardableResult
    public mutating func input(_ name: String, _ type: OnnxElementType = .float, dims: [OnnxDimension]) -> String {
        precondition(!taken.contains(name), "ONNX graph: value name '\(name)' used twice")
        taken.insert(name)
        inputs.append(ValueInfo(name: name, type: type, dims: dims))
        return name
    }

    /// Declares a graph output: `value` renamed to `name` through an Identity node when it differs.
    public mutating func output(_ value: String, as name: String, _ type: OnnxElementType = .float, dims: [OnnxDimension]) {
        var out = value
        if value != name {
            precondition(!taken.contains(name), "ONNX graph: output name '\(name)' used twice")
            taken.insert(name)
            nodes.append(Node(opType: "Identity", inputs: [value], outputs: [name], name: name + "/Identity", attributes: []))
            out = name
        }
        outputs.append(ValueInfo(name: out, type: type, dims: dims))
    }

    /// A float32 initializer named `name` (a weight under its source name), shape `tensor.shape`.
    @discardableResult
    public mutating func initializer(_ name: String, _ tensor: Tensor) -> String {
        precondition(!taken.contains(name), "ONNX graph: initializer '\(name)' added twice")
        taken.insert(name)
        initializers.append(Initializer(name: name, dims: tensor.shape, type: .float, bytes: tensor.littleEndianFloat32Data()))
        return name
    }

    /// A float32 constant initializer under a generated name.
    public mutating func constant(_ hint: String, floats: [Float], dims: [Int]) -> String {
        precondition(dims.reduce(1, *) == floats.count, "constant \(hint): \(floats.count) values for dims \(dims)")
        let n = unique(hint)
        initializers.append(Initializer(name: n, dims: dims, type: .float, bytes: Tensor(floats, shape: dims).littleEndianFloat32Data()))
        return n
    }

    /// An int64 constant (shapes, axes, indices), shared between nodes that use the same values.
    /// `scalar` makes it rank 0 (a Gather index that drops the axis).
    public mutating func int64s(_ values: [Int], scalar: Bool = false) -> String {
        let key = (scalar ? "s" : "v") + values.map(String.init).joined(separator: ",")
        if let hit = int64Constants[key] { return hit }
        let saved = scope
        scope = ""
        let n = unique(
            scalar ? "const_scalar_\(values.first ?? 0)" : "const_i64_" + values.map { $0 < 0 ? "m\(-$0)" : String($0) }.joined(separator: "_"))
        scope = saved
        precondition(!scalar || values.count == 1, "a scalar constant holds one value")
        var bytes = Data(capacity: 8 * values.count)
        for v in values {
            let u = UInt64(bitPattern: Int64(v))
            for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: u >> (8 * UInt64(k)))) }  // little-endian
        }
        initializers.append(Initializer(name: n, dims: scalar ? [] : [values.count], type: .int64, bytes: bytes))
        int64Constants[key] = n
        return n
    }

    /// Adds a node with `outputs` results; returns their names. An empty input name is an
    /// omitted optional input, as ONNX spells it.
    @discardableResult
    public mutating func node(
        _ op: String, _ inputs: [String], outputs count: Int = 1,
        _ attributes: [(String, OnnxAttribute)] = []
    ) -> [String] {
        let nodeName = unique(op)
        let outs = (0..<count).map { i in unique(count == 1 ? "\(op)_out" : "\(op)_out\(i)") }
        nodes.append(Node(opType: op, inputs: inputs, outputs: outs, name: nodeName, attributes: attributes))
        return outs
    }

    /// A single-output node.
    public mutating func op(_ op: String, _ inputs: [String], _ attributes: [(String, OnnxAttribute)] = []) -> String {
        node(op, inputs, outputs: 1, attributes)[0]
    }

    /// Adds a metadata_props entry (a key given twice keeps the last value).
    public mutating func metadata(_ key: String, _ value: String) {
        metadata.removeAll { $0.0 == key }
        metadata.append((key, value))
    }

    /// Total bytes of the initializers (protobuf messages are limited to 2 GiB).
    public var initializerBytes: Int { initializers.reduce(0) { $0 + $1.bytes.count } }
}

// MARK: Composite operations shared by the exported graphs

extension OnnxGraphBuilder {
    /// torch `nn.Linear`: x·Wᵀ + b with W (out, in) stored as the source has it (the Transpose of
    /// a constant is folded by runtimes when the session is made).
    public mutating func linear(_ x: String, weight: String, bias: String?) -> String {
        let wt = op("Transpose", [weight], [("perm", .ints([1, 0]))])
        let y = op("MatMul", [x, wt])
        guard let bias else { return y }
        return op("Add", [y, bias])
    }

    /// LayerNormalization over the last axis (opset 17).
    public mutating func layerNorm(_ x: String, weight: String, bias: String, eps: Float) -> String {
        op("LayerNormalization", [x, weight, bias], [("axis", .int(-1)), ("epsilon", .float(eps))])
    }

    /// Exact GELU, 0.5·x·(1 + erf(x/√2)) (opset 18 has no Gelu operator; runtimes fuse this).
    public mutating func gelu(_ x: String) -> String {
        let scaled = op("Div", [x, constant("sqrt2", floats: [Float(2).squareRoot()], dims: [])])
        let e = op("Erf", [scaled])
        let onePlus = op("Add", [e, constant("one", floats: [1], dims: [])])
        let xe = op("Mul", [x, onePlus])
        return op("Mul", [xe, constant("half", floats: [0.5], dims: [])])
    }

    /// GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (torch
    /// `approximate="tanh"`, transformers' "gelu_new"/"gelu_pytorch_tanh").
    public mutating func geluTanh(_ x: String) -> String {
        let x3 = op("Mul", [op("Mul", [x, x]), x])
        let inner = op("Add", [x, op("Mul", [x3, constant("gelu_c", floats: [0.044715], dims: [])])])
        let t = op("Tanh", [op("Mul", [inner, constant("sqrt_2_over_pi", floats: [Float((2 / Double.pi).squareRoot())], dims: [])])])
        let onePlus = op("Add", [t, constant("one", floats: [1], dims: [])])
        return op("Mul", [op("Mul", [x, onePlus]), constant("half", floats: [0.5], dims: [])])
    }

    /// x·σ(k·x): QuickGELU with k = 1.702, SiLU with k = 1.
    public mutating func sigmoidGate(_ x: String, k: Float) -> String {
        let arg = k == 1 ? x : op("Mul", [x, constant("quick_gelu_k", floats: [k], dims: [])])
        return op("Mul", [x, op("Sigmoid", [arg])])
    }

    /// torch bicubic resize with antialias=True, align_corners=False, of an (1, C, h, w) tensor to
    /// `sizes` = [1, C, H, W] (an int64 value): ONNX Resize (opset 18) with cubic_coeff_a −0.5
    /// (torch's antialiased kernel) and exclude_outside=1 (the taps that fall outside the input
    /// are dropped and the rest renormalised, as torch's separable "aa" kernel and Pillow do; the
    /// default exclude_outside=0 replicates the border sample and differs by up to 10%,
    /// docs/formats.md).
    public mutating func bicubicAntialiased(_ x: String, sizes: String) -> String {
        op(
            "Resize", [x, "", "", sizes],
            [
                ("mode", .string("cubic")), ("antialias", .int(1)), ("cubic_coeff_a", .float(-0.5)),
                ("exclude_outside", .int(1)), ("coordinate_transformation_mode", .string("half_pixel")),
            ])
    }

    /// torch bicubic without antialias (upsample_bicubic2d, align_corners=False, `size=`): 4 taps
    /// of Keys' kernel with a = −0.75 at the half-pixel source position, edge samples replicated:
    /// ONNX Resize with cubic_coeff_a −0.75, antialias 0, exclude_outside 0 (docs/formats.md).
    public mutating func bicubicPlain(_ x: String, sizes: String) -> String {
        op(
            "Resize", [x, "", "", sizes],
            [
                ("mode", .string("cubic")), ("antialias", .int(0)), ("cubic_coeff_a", .float(-0.75)),
                ("exclude_outside", .int(0)), ("coordinate_transformation_mode", .string("half_pixel")),
            ])
    }
}
