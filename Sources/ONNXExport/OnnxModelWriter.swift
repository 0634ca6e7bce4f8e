import Foundation
import ONNX

/// Turns an `OnnxGraphBuilder` into a ModelProto of the generated protobuf code (the one
/// onnx.proto code base the reader uses too) and serialises it.
public enum OnnxModelWriter {
    /// IR version 8: the version onnx 1.13 pairs with opset 18.
    public static let irVersion: Int64 = 8

    public static func model(_ g: OnnxGraphBuilder, opset: Int) -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = irVersion
        var ops = Onnx_OperatorSetIdProto()
        ops.domain = ""
        ops.version = Int64(opset)
        m.opsetImport = [ops]
        m.producerName = "dvt"
        m.graph = graph(g)
        m.metadataProps = g.metadata.map { key, value in
            var e = Onnx_StringStringEntryProto()
            e.key = key
            e.value = value
            return e
        }
        return m
    }

    static func graph(_ g: OnnxGraphBuilder) -> Onnx_GraphProto {
        var out = Onnx_GraphProto()
        out.name = g.name
        out.input = g.inputs.map(valueInfo)
        out.output = g.outputs.map(valueInfo)
        out.initializer = g.initializers.map { i in
            var t = Onnx_TensorProto()
            t.name = i.name
            t.dims = i.dims.map(Int64.init)
            t.dataType = i.type.rawValue
            t.rawData = i.bytes
            return t
        }
        out.node = g.nodes.map { n in
            var p = Onnx_NodeProto()
            p.name = n.name
            p.opType = n.opType
            p.input = n.inputs
            p.output = n.outputs
            p.attribute = n.attributes.map(attribute)
            return p
        }
        return out
    }

    static func valueInfo(_ v: OnnxGraphBuilder.ValueInfo) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        shape.dim = v.dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .fixed(let n): dim.dimValue = Int64(n)
            case .named(let s): dim.dimParam = s
            }
            return dim
        }
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = v.type.rawValue
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = v.name
        info.type = type
        return info
    }

    static func attribute(_ a: (String, OnnxAttribute)) -> Onnx_AttributeProto {
        var p = Onnx_AttributeProto()
        p.name = a.0
        switch a.1 {
        case .int(let v):
            p.type = .int
            p.i = Int64(v)
        case .float(let v):
            p.type = .float
            p.f = v
        case .string(let v):
            p.type = .string
            p.s = Data(v.utf8)
        case .ints(let v):
            p.type = .ints
            p.ints = v.map(Int64.init)
        }
        return p
    }

    /// Writes the model atomically (ONNXModel.write: a temporary file, then rename).
    public static func write(_ g: OnnxGraphBuilder, opset: Int, to url: URL) throws {
        try ONNXModel.write(model(g, opset: opset), to: url)
    }
}
