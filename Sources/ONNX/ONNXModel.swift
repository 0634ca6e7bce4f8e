import Formats
import Foundation
import SwiftProtobuf
import TensorCore

/// An ONNX file could not be read or used; the message names the file and, where there is one,
/// the tensor or node.
public struct ONNXError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// The bounds every ONNX read keeps, so that a hostile or broken file fails with a message
/// instead of exhausting memory or the stack.
public enum ONNXLimits {
    /// protobuf's own limit for one serialised message (2 GiB − 1); larger models keep their
    /// weights in external data, which dvt refuses anyway.
    public static let maxFileBytes = Int(Int32.max)
    /// Nesting of messages (model → graph → node → attribute → graph → …). The real exporters
    /// stay below 10 for a ViT; control-flow subgraphs add a few levels each.
    public static let maxMessageDepth = 40
    /// Tensor rank and per-dimension size.
    public static let maxRank = 8
    public static let maxDimension = Int(Int32.max)
}

/// Where one value (an initializer, a graph input) is used: a node and which of its inputs.
public struct ONNXUse: Sendable, Equatable {
    /// The node's name (`/backbone/encoder/layer.0/mlp/fc1/MatMul` for torch.onnx exports).
    public let node: String
    public let opType: String
    /// 0-based position among the node's inputs.
    public let inputIndex: Int
}

/// A parsed ONNX model (`ModelProto`) with bounded parsing and float32 decoding of its
/// initializers. Reading never follows external data: such tensors are refused by name.
public struct ONNXModel {
    /// The file the model came from (or a label for in-memory bytes), for messages.
    public let path: String
    /// The decoded protobuf; its `graph` holds nodes, initializers, inputs and outputs.
    public let proto: Onnx_ModelProto

    /// Reads and parses `url` (a regular file of at most `ONNXLimits.maxFileBytes`).
    public init(contentsOf url: URL) throws {
        let path = url.path
        let size = try FileKind.requireRegular(path, what: "ONNX model", ONNXError.init)
        guard size <= ONNXLimits.maxFileBytes else {
            throw ONNXError(
                "\(path): \(size) bytes is over protobuf's 2 GiB message limit; such models keep their weights as external data, which dvt does not read"
            )
        }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw ONNXError("cannot read ONNX model \(path): \(error.localizedDescription)")
        }
        try self.init(serializedData: data, path: path)
    }

    /// Parses serialised `ModelProto` bytes; `path` names them in errors.
    public init(serializedData data: Data, path: String) throws {
        self.path = path
        guard data.count <= ONNXLimits.maxFileBytes else {
            throw ONNXError("\(path): \(data.count) bytes is over protobuf's 2 GiB message limit")
        }
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = ONNXLimits.maxMessageDepth
        do {
            // swift-protobuf checks every length prefix against the bytes left before it copies,
            // so a corrupt length is an error, never an allocation of that size.
            proto = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw ONNXError("\(path): not a valid ONNX model (protobuf decoding failed: \(error))")
        }
        guard proto.hasGraph else {
            throw ONNXError("\(path): the ONNX model has no graph (ir_version \(proto.irVersion)); not a model file?")
        }
    }

    public var graph: Onnx_GraphProto { proto.graph }

    /// `metadata_props` as a dictionary (the last value wins for a repeated key).
    public var metadata: [String: String] {
        var out: [String: String] = [:]
        for entry in proto.metadataProps { out[entry.key] = entry.value }
        return out
    }

    /// The opset version of the default (`ai.onnx`) domain, if the model imports it.
    public var defaultOpset: Int64? {
        proto.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version
    }

    /// Every use of every value by the graph's nodes, in node order.
    public func uses() -> [String: [ONNXUse]] {
        var out: [String: [ONNXUse]] = [:]
        for node in graph.node {
            for (k, input) in node.input.enumerated() where !input.isEmpty {
                out[input, default: []].append(ONNXUse(node: node.name, opType: node.opType, inputIndex: k))
            }
        }
        return out
    }

    /// The initializers `keep` accepts, decoded to float32. Names must be non-empty and
    /// distinct; each tensor is checked by `ONNXTensor.decode`.
    public func initializers(where keep: (Onnx_TensorProto) -> Bool = { _ in true }) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for t in graph.initializer where keep(t) {
            guard !t.name.isEmpty else { throw ONNXError("\(path): an initializer has no name (dims \(t.dims))") }
            guard out[t.name] == nil else { throw ONNXError("\(path): initializer '\(t.name)' appears twice") }
            out[t.name] = try ONNXTensor.decode(t, file: path)
        }
        return out
    }

    /// Writes `model` to `url` atomically (a temporary file, then rename).
    public static func write(_ model: Onnx_ModelProto, to url: URL) throws {
        let data: Data
        do { data = try model.serializedData() } catch {
            throw ONNXError("\(url.path): cannot serialise the ONNX model: \(error)")
        }
        guard data.count <= ONNXLimits.maxFileBytes else {
            throw ONNXError("\(url.path): the serialised model is \(data.count) bytes, over protobuf's 2 GiB limit")
        }
        try AtomicFile.write(data, to: url)
    }
}

/// Decoding `TensorProto`s to float32 tensors and encoding tensors back.
public enum ONNXTensor {
    /// The name ONNX gives a `data_type` value, for messages ("FLOAT16", "data type 99").
    public static func typeName(_ dataType: Int32) -> String {
        if let t = Onnx_TensorProto.DataType(rawValue: Int(dataType)) {
            return "\(t)".uppercased()
        }
        return "data type \(dataType)"
    }

    /// How an element type is stored in `raw_data`, or nil if dvt does not read it.
    static func storedElement(_ dataType: Int32) -> StoredElement? {
        switch Onnx_TensorProto.DataType(rawValue: Int(dataType)) {
        case .float?: .float32
        case .float16?: .float16
        case .bfloat16?: .bfloat16
        case .double?: .float64
        case .int64?: .int64
        case .int32?: .int32
        case .int16?: .int16
        case .uint16?: .uint16
        case .int8?: .int8
        case .uint8?: .uint8
        case .bool?: .bool
        default: nil
        }
    }

    /// The element count of `dims`, checked: rank ≤ `ONNXLimits.maxRank`, every dimension in
    /// 0...`maxDimension`, and the product representable.
    public static func elementCount(_ dims: [Int64], tensor: String, file: String) throws -> Int {
        guard dims.count <= ONNXLimits.maxRank else {
            throw ONNXError("\(file): tensor '\(tensor)' has rank \(dims.count), over the limit of \(ONNXLimits.maxRank)")
        }
        var n = 1
        for d in dims {
            guard d >= 0, d <= Int64(ONNXLimits.maxDimension) else {
                throw ONNXError("\(file): tensor '\(tensor)' has dimension \(d) in dims \(dims)")
            }
            let (p, overflow) = n.multipliedReportingOverflow(by: Int(d))
            guard !overflow else { throw ONNXError("\(file): tensor '\(tensor)' dims \(dims) overflow an element count") }
            n = p
        }
        return n
    }

    /// The tensor's values as float32 with shape `dims` (a scalar has shape []). Reads
    /// `raw_data` when present, else the typed field ONNX assigns to the type: `float_data`
    /// (FLOAT), `int32_data` (INT32 and narrower integers, BOOL, and FLOAT16/BFLOAT16 as bit
    /// patterns), `int64_data`, `double_data`. The stored element count must equal the product
    /// of the dims exactly. Refuses external data, strings, complex, 8- and 4-bit floats and
    /// unsigned 32/64-bit integers, naming the tensor.
    public static func decode(_ t: Onnx_TensorProto, file: String) throws -> Tensor {
        let name = t.name.isEmpty ? "(unnamed)" : t.name
        if t.dataLocation == .external || !t.externalData.isEmpty {
            let location = t.externalData.first { $0.key == "location" }?.value ?? "?"
            throw ONNXError(
                "\(file): tensor '\(name)' keeps its data in an external file ('\(location)'); dvt reads only self-contained .onnx files (re-save the model with onnx.save_model(..., save_as_external_data=False))"
            )
        }
        let n = try elementCount(t.dims, tensor: name, file: file)
        let shape = t.dims.map { Int($0) }
        guard let element = storedElement(t.dataType) else {
            throw ONNXError(
                "\(file): tensor '\(name)' has element type \(typeName(t.dataType)), which dvt does not read (it reads FLOAT, FLOAT16, BFLOAT16, DOUBLE and integer/bool tensors)"
            )
        }
        if t.hasRawData {
            // Bytes = count × element size exactly, checked before anything is allocated for it.
            let (bytes, overflow) = n.multipliedReportingOverflow(by: element.byteSize)
            guard !overflow, t.rawData.count == bytes else {
                throw ONNXError(
                    "\(file): tensor '\(name)' (\(typeName(t.dataType)), dims \(t.dims)) has \(t.rawData.count) bytes of raw_data, expected \(overflow ? "more than Int.max" : "\(bytes)")"
                )
            }
            return Tensor.decoding(ReadOnlyBytes.copy(t.rawData), at: 0, as: element, shape: shape)
        }
        func check(_ count: Int, _ field: String) throws {
            guard count == n else {
                throw ONNXError("\(file): tensor '\(name)' (\(typeName(t.dataType)), dims \(t.dims)) has \(count) values in \(field), expected \(n)")
            }
        }
        switch element {
        case .float32:
            try check(t.floatData.count, "float_data")
            return Tensor(t.floatData, shape: shape)
        case .float64:
            try check(t.doubleData.count, "double_data")
            return Tensor(t.doubleData.map { Float($0) }, shape: shape)
        case .int64:
            try check(t.int64Data.count, "int64_data")
            return Tensor(t.int64Data.map { Float($0) }, shape: shape)
        case .float16:
            try check(t.int32Data.count, "int32_data")
            return Tensor(t.int32Data.map { halfToFloat(UInt16(truncatingIfNeeded: $0)) }, shape: shape)
        case .bfloat16:
            try check(t.int32Data.count, "int32_data")
            return Tensor(t.int32Data.map { Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: $0)) << 16) }, shape: shape)
        case .bool:
            try check(t.int32Data.count, "int32_data")
            return Tensor(t.int32Data.map { $0 != 0 ? 1 : 0 }, shape: shape)
        case .int32, .int16, .uint16, .int8, .uint8:
            try check(t.int32Data.count, "int32_data")
            return Tensor(t.int32Data.map { Float($0) }, shape: shape)
        }
    }

    /// A FLOAT initializer holding `tensor` as little-endian raw_data (what torch.onnx writes).
    public static func proto(name: String, _ tensor: Tensor) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.dims = tensor.shape.map { Int64($0) }
        t.rawData = tensor.littleEndianFloat32Data()
        return t
    }
}
