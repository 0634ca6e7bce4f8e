import Foundation
import SwiftProtobuf
import TensorCore
import TestSupport
import Testing

@testable import ONNX

/// A small model built in the test: a MatMul + Add graph with initializers in every stored form
/// dvt reads (fp32 raw_data and float_data, fp16/bf16 raw and as int32_data bit patterns, int64),
/// a dynamic batch dimension and metadata.
enum SmallModel {
    static let weight: [Float] = [0.5, -1.25, 2, 0.125, -3, 1e-3]  // [in 3, out 2]
    static let bias: [Float] = [0.25, -0.75]

    static func build() -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "small"
        g.initializer.append(ONNXTensor.proto(name: "onnx::MatMul_7", Tensor(weight, shape: [3, 2])))
        var b = Onnx_TensorProto()
        b.name = "fc.bias"
        b.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        b.dims = [2]
        b.floatData = bias
        g.initializer.append(b)
        // fp16 bit patterns of 1, −2, 0.5 (0x3C00, 0xC000, 0x3800) in int32_data.
        var h = Onnx_TensorProto()
        h.name = "half_typed"
        h.dataType = Int32(Onnx_TensorProto.DataType.float16.rawValue)
        h.dims = [3]
        h.int32Data = [0x3C00, 0xC000, 0x3800]
        g.initializer.append(h)
        // bf16 of 1.5 (0x3FC0) and −0.25 (0xBE80) as raw little-endian bytes.
        var bf = Onnx_TensorProto()
        bf.name = "bf16_raw"
        bf.dataType = Int32(Onnx_TensorProto.DataType.bfloat16.rawValue)
        bf.dims = [1, 2]
        bf.rawData = Data([0xC0, 0x3F, 0x80, 0xBE])
        g.initializer.append(bf)
        var bt = Onnx_TensorProto()
        bt.name = "bf16_typed"
        bt.dataType = Int32(Onnx_TensorProto.DataType.bfloat16.rawValue)
        bt.dims = [2]
        bt.int32Data = [0x3FC0, 0xBE80]
        g.initializer.append(bt)
        var hr = Onnx_TensorProto()
        hr.name = "half_raw"
        hr.dataType = Int32(Onnx_TensorProto.DataType.float16.rawValue)
        hr.dims = [2]
        hr.rawData = Data([0x00, 0x3C, 0x00, 0xC0])
        g.initializer.append(hr)
        var i = Onnx_TensorProto()
        i.name = "shape_const"
        i.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        i.dims = [2]
        i.int64Data = [-1, 2]
        g.initializer.append(i)

        var mm = Onnx_NodeProto()
        mm.name = "/fc/MatMul"
        mm.opType = "MatMul"
        mm.input = ["x", "onnx::MatMul_7"]
        mm.output = ["/fc/MatMul_output_0"]
        var add = Onnx_NodeProto()
        add.name = "/fc/Add"
        add.opType = "Add"
        add.input = ["fc.bias", "/fc/MatMul_output_0"]
        add.output = ["y"]
        var alpha = Onnx_AttributeProto()
        alpha.name = "note"
        alpha.type = .string
        alpha.s = Data("attribute".utf8)
        add.attribute = [alpha]
        g.node = [mm, add]

        func value(_ name: String, _ dims: [Onnx_TensorShapeProto.Dimension]) -> Onnx_ValueInfoProto {
            var v = Onnx_ValueInfoProto()
            v.name = name
            var tt = Onnx_TypeProto.Tensor()
            tt.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            tt.shape.dim = dims
            v.type.tensorType = tt
            return v
        }
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = "batch"
        var three = Onnx_TensorShapeProto.Dimension()
        three.dimValue = 3
        var two = Onnx_TensorShapeProto.Dimension()
        two.dimValue = 2
        g.input = [value("x", [batch, three])]
        g.output = [value("y", [batch, two])]

        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.producerName = "dvt-tests"
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        var meta = Onnx_StringStringEntryProto()
        meta.key = "source"
        meta.value = "test"
        m.metadataProps = [meta]
        m.graph = g
        return m
    }

    static func bytes() throws -> Data { try build().serializedData() }
}

@Suite("ONNX reader")
struct ONNXReaderTests {
    @Test func readsEveryStoredForm() throws {
        let model = try ONNXModel(serializedData: try SmallModel.bytes(), path: "small.onnx")
        #expect(model.proto.irVersion == 8)
        #expect(model.defaultOpset == 17)
        #expect(model.metadata == ["source": "test"])
        let t = try model.initializers()
        #expect(t.count == 7)
        #expect(t["onnx::MatMul_7"]!.shape == [3, 2])
        #expect(t["onnx::MatMul_7"]!.scalars == SmallModel.weight)
        #expect(t["fc.bias"]!.scalars == SmallModel.bias)
        #expect(t["half_typed"]!.scalars == [1, -2, 0.5])
        #expect(t["half_raw"]!.scalars == [1, -2])
        #expect(t["bf16_raw"]!.shape == [1, 2])
        #expect(t["bf16_raw"]!.scalars == [1.5, -0.25])
        #expect(t["bf16_typed"]!.scalars == [1.5, -0.25])
        #expect(t["shape_const"]!.scalars == [-1, 2])
        // Dynamic dims survive: the graph input keeps its symbolic batch dimension.
        #expect(model.graph.input[0].type.tensorType.shape.dim[0].dimParam == "batch")
        #expect(model.graph.input[0].type.tensorType.shape.dim[1].dimValue == 3)
        #expect(model.graph.node[1].attribute[0].s == Data("attribute".utf8))
    }

    @Test func usesNameTheConsumingNodes() throws {
        let model = try ONNXModel(serializedData: try SmallModel.bytes(), path: "small.onnx")
        let uses = model.uses()
        #expect(uses["onnx::MatMul_7"] == [ONNXUse(node: "/fc/MatMul", opType: "MatMul", inputIndex: 1)])
        #expect(uses["fc.bias"] == [ONNXUse(node: "/fc/Add", opType: "Add", inputIndex: 0)])
    }

    @Test func writesAtomicallyAndReadsBack() throws {
        let dir = temporaryDirectory("onnx-write")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.onnx")
        try ONNXModel.write(SmallModel.build(), to: url)
        let back = try ONNXModel(contentsOf: url)
        #expect(back.proto == SmallModel.build())
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.onnx"])
    }

    /// Expects an ONNXError whose message contains every fragment.
    func expectError(_ fragments: [String], _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an ONNXError containing \(fragments)")
        } catch let e as ONNXError {
            for f in fragments { #expect(e.description.contains(f), "'\(e.description)' lacks '\(f)'") }
        } catch {
            Issue.record("unexpected error type \(type(of: error)): \(error)")
        }
    }

    func tensor(_ edit: (inout Onnx_TensorProto) -> Void) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = "w"
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.dims = [2, 2]
        t.floatData = [1, 2, 3, 4]
        edit(&t)
        return t
    }

    @Test func refusesBadTensorsByName() {
        expectError(["m.onnx", "'w'", "external file", "'w.bin'"]) {
            _ = try ONNXTensor.decode(
                tensor {
                    $0.floatData = []
                    $0.dataLocation = .external
                    var e = Onnx_StringStringEntryProto()
                    e.key = "location"
                    e.value = "w.bin"
                    $0.externalData = [e]
                }, file: "m.onnx")
        }
        expectError(["'w'", "12 bytes of raw_data, expected 16"]) {
            _ = try ONNXTensor.decode(
                tensor {
                    $0.floatData = []; $0.rawData = Data(count: 12)
                }, file: "m.onnx")
        }
        expectError(["'w'", "3 values in float_data, expected 4"]) {
            _ = try ONNXTensor.decode(tensor { $0.floatData = [1, 2, 3] }, file: "m.onnx")
        }
        expectError(["'w'", "dimension -2"]) { _ = try ONNXTensor.decode(tensor { $0.dims = [-2, -2] }, file: "m.onnx") }
        expectError(["'w'", "rank 9"]) { _ = try ONNXTensor.decode(tensor { $0.dims = Array(repeating: 1, count: 9) }, file: "m.onnx") }
        expectError(["'w'", "overflow"]) {
            _ = try ONNXTensor.decode(tensor { $0.dims = [Int64(Int32.max), Int64(Int32.max), Int64(Int32.max)] }, file: "m.onnx")
        }
        expectError(["'w'", "STRING"]) {
            _ = try ONNXTensor.decode(tensor { $0.dataType = Int32(Onnx_TensorProto.DataType.string.rawValue) }, file: "m.onnx")
        }
        expectError(["'w'", "data type 99"]) { _ = try ONNXTensor.decode(tensor { $0.dataType = 99 }, file: "m.onnx") }
        // A claimed huge raw tensor with no bytes: refused by the count check, nothing allocated.
        expectError(["'w'", "expected 17179869176"]) {
            _ = try ONNXTensor.decode(
                tensor {
                    $0.floatData = []; $0.dims = [Int64(Int32.max), 2]; $0.rawData = Data(count: 8)
                }, file: "m.onnx")
        }
    }

    @Test func refusesFilesThatAreNotModels() throws {
        expectError(["x.onnx", "no graph"]) { _ = try ONNXModel(serializedData: Data(), path: "x.onnx") }
        expectError(["x.onnx", "not a valid ONNX model"]) { _ = try ONNXModel(serializedData: Data([0x0A, 0xFF, 0xFF, 0x01]), path: "x.onnx") }
        expectError(["/nonexistent/m.onnx", "no such file"]) { _ = try ONNXModel(contentsOf: URL(fileURLWithPath: "/nonexistent/m.onnx")) }
        let dir = temporaryDirectory("onnx-dir")
        defer { try? FileManager.default.removeItem(at: dir) }
        expectError(["a directory"]) { _ = try ONNXModel(contentsOf: dir) }
    }

    /// Graphs nested in attributes (If/Loop bodies) deeper than the limit are refused, not
    /// recursed into until the stack runs out.
    @Test func boundsNesting() throws {
        var inner = Onnx_GraphProto()
        inner.name = "leaf"
        for _ in 0..<60 {
            var attr = Onnx_AttributeProto()
            attr.name = "body"
            attr.type = .graph
            attr.g = inner
            var node = Onnx_NodeProto()
            node.opType = "If"
            node.attribute = [attr]
            var g = Onnx_GraphProto()
            g.node = [node]
            inner = g
        }
        var m = Onnx_ModelProto()
        m.graph = inner
        let data = try m.serializedData()
        expectError(["deep.onnx", "not a valid ONNX model"]) { _ = try ONNXModel(serializedData: data, path: "deep.onnx") }
    }

    /// Every truncation and a few thousand seeded byte mutations of the small model: each read
    /// either succeeds with tensors backed by the bytes present or throws an ONNXError; never a
    /// crash, hang or huge allocation.
    @Test func fuzzMutationsAndTruncations() throws {
        let base = try SmallModel.bytes()
        var accepted = 0, rejected = 0
        func check(_ d: Data) {
            do {
                let m = try ONNXModel(serializedData: d, path: "fuzz.onnx")
                let t = try m.initializers()
                let elements = t.values.reduce(0) { $0 + $1.count }
                #expect(elements <= 2 * d.count + 16)  // no element without at least ~half a stored byte
                accepted += 1
            } catch is ONNXError {
                rejected += 1
            } catch {
                Issue.record("unexpected error type \(type(of: error)): \(error)")
            }
        }
        for n in 0..<base.count { check(base.prefix(n)) }
        var rng = RandomGenerator(seed: 23)
        for _ in 0..<3000 {
            var d = base
            for _ in 0..<(1 + rng.randint(3)) {
                let i = rng.randint(d.count)
                // Half the time a length-like byte (high bit set extends a varint).
                d[i] = rng.uniform() < 0.5 ? UInt8(truncatingIfNeeded: rng.next()) : 0xFF
            }
            check(d)
        }
        #expect(accepted >= 1)
        #expect(rejected > 500)
        print("[fuzz] onnx: \(accepted) accepted, \(rejected) rejected with ONNXError")
    }
}
