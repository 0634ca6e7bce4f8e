import Formats
import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import DVT

/// Issue 18: inputs with NaN/Inf are refused where they are read, naming the file and the index.
@Suite("Input validation")
struct InputValidationTests {
    @Test("firstNonFinite finds the first NaN or Inf and its multi-index")
    func firstNonFinite() {
        var values = [Float](repeating: 1, count: 2 * 3 * 4)
        #expect(Tensor(values, shape: [2, 3, 4]).firstNonFinite() == nil)
        values[1 * 12 + 0 * 4 + 1] = .infinity
        values[23] = .nan
        let bad = Tensor(values, shape: [2, 3, 4]).firstNonFinite()
        #expect(bad?.index == [1, 0, 1] && bad?.value == .infinity)
        values[13] = 1
        #expect(Tensor(values, shape: [2, 3, 4]).firstNonFinite()?.index == [1, 2, 3])
    }

    @Test("a planted file with a NaN coordinate is refused with the tensor and index named")
    func plantedNaN() throws {
        var o = PlantedData.Options()
        o.grid = 4; o.dim = 8; o.views = 2
        var named = PlantedData.generate(seed: 3, options: o).namedTensors
        var coords = named["coords"]!.scalars
        coords[5] = .nan
        named["coords"] = Tensor(coords, shape: named["coords"]!.shape)
        let url = temporaryDirectory("planted-nan").appendingPathComponent("planted.safetensors")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try SafeTensors.write(named, to: url)
        do {
            _ = try PlantedData.load(contentsOf: url)
            Issue.record("expected an error")
        } catch {
            let m = String(describing: error)
            #expect(m.contains(url.path) && m.contains("'coords'") && m.contains("non-finite") && m.contains("[0, 0, 2, 1]"), "\(m)")
        }
    }

    @Test("stage 2 refuses a feature map with an Inf, naming the file and index, instead of a NaN loss")
    func stage2NaN() throws {
        var v = [Float](repeating: 0.5, count: 3 * 4 * 8)
        v[(1 * 4 + 2) * 8 + 7] = -.infinity
        let url = temporaryDirectory("stage2-inf").appendingPathComponent("map.npy")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try Npy.write(Tensor(v, shape: [3, 4, 8]), to: url)
        do {
            _ = try FeatureMapReader(height: 3, width: 4, dim: 8).read(url)
            Issue.record("expected an error")
        } catch {
            let m = String(describing: error)
            #expect(m.contains(url.path) && m.contains("[1, 2, 7]") && m.contains("-inf") && m.contains("stage 2"), "\(m)")
        }
    }
}
