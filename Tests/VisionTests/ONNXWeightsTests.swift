import Foundation
import ONNX
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// A model laid out as torch.onnx (TorchScript exporter) writes a module that wraps a
/// transformers Dinov2Model as `self.backbone` next to a `decoder`: named parameters where the
/// exporter kept them, `onnx::MatMul_N` linear weights stored [in, out], the position embedding
/// as two unnamed slices, decoder tensors and an int64 shape constant beside them.
enum ExportedDinov2 {
    static let c = 4, hidden = 8, grid = 2

    static func tensor(_ shape: [Int], seed: UInt64) -> Tensor { randn(shape, seed: seed, requiresGrad: false) }

    static func initializer(_ name: String, _ t: Tensor) -> Onnx_TensorProto { ONNXTensor.proto(name: name, t) }

    static func node(_ name: String, _ op: String, _ inputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.name = name
        n.opType = op
        n.input = inputs
        n.output = [name + "_output_0"]
        return n
    }

    /// The model plus the tensors a reader must recover, under transformers names.
    static func build(extraUnnamed: Bool = false) -> (Onnx_ModelProto, [String: Tensor]) {
        var g = Onnx_GraphProto()
        var expected: [String: Tensor] = [:]
        var seed: UInt64 = 1
        func named(_ key: String, _ shape: [Int]) {
            seed += 1
            let t = tensor(shape, seed: seed)
            g.initializer.append(initializer("backbone." + key, t))
            expected[key] = t
        }
        named("embeddings.cls_token", [1, 1, c])
        named("embeddings.patch_embeddings.projection.weight", [c, 3, 2, 2])
        named("embeddings.patch_embeddings.projection.bias", [c])
        let clsPos = tensor([1, 1, c], seed: 90), gridPos = tensor([1, grid * grid, c], seed: 91)
        g.initializer.append(initializer("onnx::Concat_11", clsPos))
        g.initializer.append(initializer("onnx::Reshape_12", gridPos))
        expected["embeddings.position_embeddings"] = Tensor.concat([clsPos, gridPos], axis: 1)
        g.node.append(node("/backbone/embeddings/Concat_6", "Concat", ["onnx::Concat_11", "/backbone/embeddings/Reshape_2_output_0"]))
        g.node.append(node("/backbone/embeddings/Reshape_1", "Reshape", ["onnx::Reshape_12", "/backbone/embeddings/Concat_2_output_0"]))
        var matmul = 20
        for (module, inDim, outDim) in [
            ("attention.attention.query", c, c), ("attention.attention.key", c, c),
            ("attention.attention.value", c, c), ("attention.output.dense", c, c),
            ("mlp.fc1", c, hidden), ("mlp.fc2", hidden, c),
        ] {
            seed += 1
            let w = tensor([outDim, inDim], seed: seed)  // torch's [out, in]
            let name = "onnx::MatMul_\(matmul)"
            matmul += 1
            g.initializer.append(initializer(name, w.transpose(0, 1)))  // stored [in, out]
            let path = "/backbone/encoder/layer.0/" + module.replacingOccurrences(of: ".", with: "/")
            g.node.append(node(path + "/MatMul", "MatMul", [path + "_input", name]))
            expected["encoder.layer.0.\(module).weight"] = w
            named("encoder.layer.0.\(module).bias", [outDim])
        }
        for key in ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "layer_scale1.lambda1", "layer_scale2.lambda1"] {
            named("encoder.layer.0." + key, [c])
        }
        named("layernorm.weight", [c])
        named("layernorm.bias", [c])
        // Outside the trunk: a decoder, an unnamed tensor only the decoder uses, a shape constant.
        g.initializer.append(initializer("decoder.final_conv.weight", tensor([1, c, 1, 1], seed: 70)))
        g.initializer.append(initializer("onnx::Mul_99", tensor([c], seed: 71)))
        g.node.append(node("/decoder/Mul", "Mul", ["x", "onnx::Mul_99"]))
        var shape = Onnx_TensorProto()
        shape.name = "onnx::Reshape_5"
        shape.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        shape.dims = [2]
        shape.int64Data = [1, -1]
        g.initializer.append(shape)
        g.node.append(node("/backbone/encoder/layer.0/Reshape", "Reshape", ["y", "onnx::Reshape_5"]))
        if extraUnnamed {
            g.initializer.append(initializer("onnx::Add_77", tensor([c], seed: 72)))
            g.node.append(node("/backbone/encoder/layer.0/Add_3", "Add", ["z", "onnx::Add_77"]))
        }
        var m = Onnx_ModelProto()
        m.irVersion = 7
        m.graph = g
        return (m, expected)
    }
}

@Suite("ONNX weights (torch.onnx exports of transformers ViTs)")
struct ONNXWeightsTests {
    @Test func namesEveryTrunkTensor() throws {
        let (proto, expected) = ExportedDinov2.build()
        let model = try ONNXModel(serializedData: try proto.serializedData(), path: "focus.onnx")
        let (got, prefix) = try ONNXCheckpointNames.transformersStateDict(model)
        #expect(prefix == "backbone.")
        #expect(Set(got.keys) == Set(expected.keys))
        for (k, t) in expected {
            #expect(got[k]?.shape == t.shape, "\(k)")
            #expect(got[k]?.scalars == t.scalars, "\(k)")
        }
    }

    @Test func refusesAnUnmappableTrunkTensorByName() throws {
        let (proto, _) = ExportedDinov2.build(extraUnnamed: true)
        let model = try ONNXModel(serializedData: try proto.serializedData(), path: "focus.onnx")
        #expect {
            _ = try ONNXCheckpointNames.transformersStateDict(model)
        } throws: { e in
            let s = "\(e)"
            return s.contains("focus.onnx") && s.contains("'onnx::Add_77'") && s.contains("/backbone/encoder/layer.0/Add_3")
        }
    }

    @Test func refusesAModelWithoutATrunk() throws {
        var m = Onnx_ModelProto()
        m.graph.initializer = [ONNXTensor.proto(name: "fc.weight", Tensor(zeros: [2, 2]))]
        let model = try ONNXModel(serializedData: try m.serializedData(), path: "mlp.onnx")
        #expect {
            _ = try ONNXCheckpointNames.transformersStateDict(model)
        } throws: { "\($0)".contains("mlp.onnx") && "\($0)".contains("embeddings.patch_embeddings.projection.weight") }
    }

    @Test func formatIsToldByTheFirstBytes() throws {
        let (proto, _) = ExportedDinov2.build()
        let head = [UInt8](try proto.serializedData().prefix(16))
        #expect(try WeightFiles.format(ofHead: head, path: "x") == .onnx)
        // torch.onnx's own first bytes: ir_version 7, producer_name "pytorch".
        #expect(try WeightFiles.format(ofHead: [0x08, 0x07, 0x12, 0x07] + Array("pytorch".utf8), path: "x") == .onnx)
    }
}
